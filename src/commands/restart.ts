import { Command } from 'commander';
import { loadConfig } from '../lib/config/load.js';
import { homePaths } from '../lib/paths.js';
import { readSnapshot } from '../lib/supervisor/state.js';
import { runStart } from './start.js';
import { parseTimeout, runStop } from './stop.js';

export function restartCommand(): Command {
  return new Command('restart')
    .description('stop, then start (default: everything); keeps simulate mode if the platform ran with it')
    .argument('[names...]', 'daemons or infra to restart')
    .option('--simulate', 'start with the exchange simulator')
    .option('--timeout <seconds>', 'seconds to wait for each process before SIGKILL', parseTimeout, 20_000)
    .action(async (names: string[], opts: { simulate?: boolean; timeout: number }) => {
      // Read before stopping: a full stop ends the supervisor, and with it the memory of --simulate.
      const wasSimulating = readSnapshot(homePaths(loadConfig().home).supervisorState)?.simulate === true;
      await runStop(names, { timeout: opts.timeout });
      await runStart(names, { simulate: opts.simulate === true || wasSimulating });
    });
}
