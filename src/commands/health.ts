import { Command } from 'commander';
import { CheckFailed } from '../lib/errors.js';
import type { StreamHealth } from '../lib/feeds/stream-health.js';
import { green, printJson, println, red, stateColor, table } from './output.js';
import { runningConfig } from './running-config.js';

/** The collector's status of a stream, with its stale instruments named: `stale (ETHUSDT)`. */
function collectorCell(st: StreamHealth): string {
  const stale = (st.instruments ?? []).filter((i) => i.status === 'stale').map((i) => i.instrument);
  return stateColor(st.status) + (st.status === 'stale' && stale.length > 0 ? ` (${stale.join(', ')})` : '');
}

export function healthCommand(): Command {
  return new Command('health')
    .description('infra and daemon health, and data freshness per venue x data type (exit 0 healthy, 1 not)')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { config } = runningConfig();
      const { checkHealth } = await import('../lib/checks/health.js');
      const report = await checkHealth(config);
      if (opts.json) printJson(report);
      else {
        println(`supervisor ${stateColor(report.supervisor.state)}${report.supervisor.detail ? ` (${report.supervisor.detail})` : ''}`);
        println();
        println(table(['INFRA', 'MODE', 'STATE', 'VERSION', 'ADDRESS'], report.infra.map((s) => [s.name, s.mode, stateColor(s.up ? 'up' : 'down'), s.version ?? '-', s.address])));
        println();
        println(table(['DAEMON', 'STATE', 'HTTP', 'REGISTERED'], report.daemons.map((d) => [d.name, stateColor(d.ok ? 'ok' : 'down'), String(d.httpStatus ?? '-'), d.registered ? 'yes' : 'no'])));
        if (report.freshness.length > 0) {
          println();
          // STORED: newest row in ClickHouse hot; COLLECTOR: what the collector itself last received.
          const seen = new Map(report.collectorStreams.map((st) => [`${st.venue} ${st.dataType}`, st]));
          println(table(
            ['VENUE', 'DATA TYPE', 'STORED', 'AGE', 'LAST EVENT', 'COLLECTOR'],
            report.freshness.map((f) => {
              const collector = seen.get(`${f.venue} ${f.dataType}`);
              return [f.venue, f.dataType, stateColor(f.status), f.ageSeconds === null ? '-' : `${f.ageSeconds}s`, f.lastEventAt ?? '-', collector === undefined ? '-' : collectorCell(collector)];
            }),
          ));
        }
        println();
        println(report.ok ? green('healthy') : red(`unhealthy:\n  ${report.problems.join('\n  ')}`));
      }
      if (!report.ok) throw new CheckFailed();
    });
}
