import { Command } from 'commander';
import { runStart } from './start.js';
import { parseTimeout, runStop } from './stop.js';

export function restartCommand(): Command {
  return new Command('restart')
    .description('stop, then start (default: everything)')
    .argument('[names...]', 'daemons or infra to restart')
    .option('--simulate', 'start with the exchange simulator')
    .option('--timeout <seconds>', 'seconds to wait for each process before SIGKILL', parseTimeout, 20_000)
    .action(async (names: string[], opts: { simulate?: boolean; timeout: number }) => {
      await runStop(names, { timeout: opts.timeout });
      await runStart(names, { simulate: opts.simulate });
    });
}
