import { Command } from 'commander';
import { loadConfig } from '../lib/config/load.js';
import { CheckFailed } from '../lib/errors.js';
import { parseSince } from './integrity.js';
import { green, printJson, println, red, yellow } from './output.js';

export function repairCommand(): Command {
  return new Command('repair')
    .description('re-copy short windows, remove duplicates, clear stale locks, restart dead daemons (idempotent, cron-safe)')
    .option('--dry-run', 'only say what would be done')
    .option('--since <duration>', 'how far back to look for broken windows', parseSince, 24 * 3_600_000)
    .option('--json', 'print as JSON')
    .action(async (opts: { dryRun?: boolean; since: number; json?: boolean }) => {
      const config = loadConfig();
      const { runRepair } = await import('../lib/checks/repair.js');
      const report = await runRepair(config, { dryRun: opts.dryRun === true, sinceMs: opts.since });
      if (opts.json) printJson(report);
      else {
        const verb = (done: boolean) => (report.dryRun ? yellow('would') : done ? green('done') : red('failed'));
        for (const a of report.data) println(`${verb(a.done)} ${a.kind} ${a.table}${a.server ? ` (${a.server})` : ''}${a.window ? ` ${a.window.start}..${a.window.end}` : ''}: ${a.detail}`);
        for (const l of report.locks) println(`${verb(l.removed)} remove ${l.path}: ${l.reason}`);
        for (const k of report.keptLocks) println(`${yellow('kept')} ${k.path}: ${k.reason}`);
        for (const i of report.infra) println(`${verb(i.done)} start ${i.name}: down while daemons should run`);
        for (const r of report.restarts) println(`${verb(r.done)} restart ${r.daemon}: ${r.reason}${r.detail ? ` -> ${r.detail}` : ''}`);
        for (const e of report.errors) println(red(e));
        const n = report.data.length + report.locks.length + report.infra.length + report.restarts.length;
        println(n === 0 && report.errors.length === 0 ? 'nothing to repair' : report.ok ? green(report.dryRun ? `${n} actions planned` : 'repaired') : red('repair incomplete'));
      }
      if (!report.ok) throw new CheckFailed();
    });
}
