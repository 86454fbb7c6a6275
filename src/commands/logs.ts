import { Command } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { loadConfig } from '../lib/config/load.js';
import { UsageError } from '../lib/errors.js';
import { followFile } from '../lib/log-tail.js';
import { homePaths } from '../lib/paths.js';
import { tailFile } from '../lib/process-util.js';

export function logsCommand(): Command {
  return new Command('logs')
    .description('print the last lines of a process log; -f follows it (across rotation)')
    .argument('<name>', 'daemon, infra or supervisor name')
    .option('-f, --follow', 'keep printing new lines until interrupted')
    .option('-n, --lines <n>', 'how many lines', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`-n must be a whole number, got '${v}'`);
      return n;
    }, 50)
    .action(async (name: string, opts: { follow?: boolean; lines: number }) => {
      const paths = homePaths(loadConfig().home);
      const file = paths.logFile(name);
      if (!existsSync(file)) {
        const known = existsSync(paths.logs) ? readdirSync(paths.logs).filter((f) => f.endsWith('.log')).map((f) => f.slice(0, -4)) : [];
        throw new UsageError(`no log for '${name}' in ${paths.logs}${known.length ? ` (have: ${known.join(', ')})` : ''}`);
      }
      const text = opts.lines > 0 ? tailFile(file, opts.lines) : '';
      if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      if (opts.follow) {
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        process.once('SIGTERM', () => ac.abort());
        await followFile(file, (chunk) => process.stdout.write(chunk), ac.signal);
      }
    });
}
