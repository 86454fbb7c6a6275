import { Command } from 'commander';
import { loadConfig } from '../lib/config/load.js';
import { homePaths } from '../lib/paths.js';
import { readSnapshot } from '../lib/supervisor/state.js';
import { runStart } from './start.js';
import { parseTimeout, runStop } from './stop.js';

export function restartCommand(): Command {
  return new Command('restart')
    .description('stop, then start (default: everything); keeps simulate mode and the local Prometheus if the platform ran with them')
    .argument('[names...]', 'daemons or infra to restart')
    .option('--simulate', 'start with the exchange simulator')
    .option('--timeout <seconds>', 'seconds to wait for each process before SIGKILL', parseTimeout, 20_000)
    .action(async (names: string[], opts: { simulate?: boolean; timeout: number }) => {
      // Read before stopping: a full stop ends the supervisor, and with it the memory of --simulate,
      // and stops the local Prometheus.
      const config = loadConfig();
      const wasSimulating = readSnapshot(homePaths(config.home).supervisorState)?.simulate === true;
      const { prometheusRunning } = await import('../lib/infra/prometheus-server.js');
      const withPrometheus = prometheusRunning(config);
      await runStop(names, { timeout: opts.timeout });
      await runStart(names, { simulate: opts.simulate === true || wasSimulating, withPrometheus });
    });
}
