import { Command } from 'commander';
import { loadConfig } from '../lib/config/load.js';
import { ProblemsFoundError } from '../lib/errors.js';
import { homePaths } from '../lib/paths.js';
import { green, printJson, println, progress, red, stateColor, table } from './output.js';

export async function runStart(names: string[], opts: { simulate?: boolean; withPrometheus?: boolean; json?: boolean }): Promise<void> {
  const config = loadConfig();
  const { startPlatform } = await import('../lib/platform.js');
  const report = await startPlatform(config, { names, simulate: opts.simulate === true, withPrometheus: opts.withPrometheus === true, progress });
  if (opts.json) printJson(report);
  else {
    if (report.daemons.daemons.length > 0) {
      println(table(['NAME', 'STATE', 'PID', 'PORT'], report.daemons.daemons
        .filter((d) => d.state !== 'stopped')
        .map((d) => [d.name, stateColor(d.state), String(d.pid ?? '-'), String(d.port)])));
    }
    for (const f of report.daemons.failed) println(red(`${f.name}: ${f.reason}`));
    if (report.prometheus) println(`prometheus ${report.prometheus.url} (pid ${report.prometheus.pid})`);
    if (report.daemons.ok) println(green(`started; logs in ${homePaths(config.home).logs}`));
  }
  if (!report.daemons.ok) {
    throw new ProblemsFoundError(`start incomplete: ${report.daemons.failed.map((f) => `${f.name} (${f.reason})`).join('; ')}`);
  }
}

export function startCommand(): Command {
  return new Command('start')
    .description('start local infra and the daemons in dependency order, each gated on its health (idempotent)')
    .argument('[names...]', 'daemons or infra to start (default: everything)')
    .option('--simulate', 'also start the exchange simulator and point the collector at it')
    .option('--with-prometheus', 'also run a local Prometheus scraping every daemon (config/prometheus.yml, alerts.yml)')
    .option('--json', 'print the result as JSON')
    .action(runStart);
}
