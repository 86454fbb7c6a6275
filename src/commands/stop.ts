import { Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import { printJson, println, progress, yellow } from './output.js';
import { runningConfig } from './running-config.js';

export function parseTimeout(value: string): number {
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got '${value}'`);
  return s * 1000;
}

export async function runStop(names: string[], opts: { timeout: number; json?: boolean }): Promise<void> {
  const { config } = runningConfig();
  const { stopPlatform } = await import('../lib/platform.js');
  const report = await stopPlatform(config, { names, timeoutMs: opts.timeout, progress });
  if (opts.json) return printJson(report);
  for (const o of report.killedOrphans) println(yellow(`stopped ${o.name} (pid ${o.pid}) left without a supervisor`));
  println(`stopped ${[...report.daemons, ...(report.prometheus ? ['prometheus'] : []), ...report.infra].join(', ') || 'nothing (was not running)'}`);
}

export function stopCommand(): Command {
  return new Command('stop')
    .description('stop daemons (reverse order, drained) and local infra: SIGTERM, then SIGKILL after the timeout')
    .argument('[names...]', 'daemons or infra to stop (default: everything)')
    .option('--timeout <seconds>', 'seconds to wait for each process before SIGKILL', parseTimeout, 20_000)
    .option('--json', 'print the result as JSON')
    .action(runStop);
}
