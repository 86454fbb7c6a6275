import { Command } from 'commander';
import { cleanStaleFiles } from '../lib/checks/clean.js';
import { loadConfig } from '../lib/config/load.js';
import { printJson, println, yellow } from './output.js';

export function cleanCommand(): Command {
  return new Command('clean')
    .description('remove stale pid/lock files, a dead supervisor socket and temp files (never data)')
    .option('--force', 'also remove temp files younger than an hour')
    .option('--dry-run', 'only list what would be removed')
    .option('--json', 'print as JSON')
    .action((opts: { force?: boolean; dryRun?: boolean; json?: boolean }) => {
      const { files, kept } = cleanStaleFiles(loadConfig(), { dryRun: opts.dryRun === true, force: opts.force === true });
      if (opts.json) return printJson({ dryRun: opts.dryRun === true, files, kept });
      for (const k of kept) println(`${yellow('kept')} ${k.path}: ${k.reason}`);
      if (files.length === 0) return println('nothing to clean');
      for (const a of files) println(`${a.removed ? 'removed' : yellow('would remove')} ${a.path}: ${a.reason}`);
    });
}
