import { Command } from 'commander';
import { loadConfig } from '../lib/config/load.js';
import { CheckFailed } from '../lib/errors.js';
import { parseSince } from './integrity.js';
import { describeHole } from '../lib/checks/hole-report.js';
import { dim, green, printJson, println, red, yellow } from './output.js';

export function repairCommand(): Command {
  return new Command('repair')
    .description('refill holes from the venues\' history, re-copy short windows, remove duplicates, clear stale locks, start what died (servers, supervisor, daemons; running daemons are kept) (idempotent, cron-safe)')
    .option('--dry-run', 'only say what would be done')
    .option('--since <duration>', 'how far back to look for broken windows', parseSince, 24 * 3_600_000)
    .option('--json', 'print as JSON')
    .action(async (opts: { dryRun?: boolean; since: number; json?: boolean }) => {
      const config = loadConfig();
      const { runRepair } = await import('../lib/checks/repair.js');
      // Refilling holes can take a while (venue rate limits): say what happens on a terminal.
      const progress = !opts.json && process.stderr.isTTY ? (line: string) => process.stderr.write(`${dim(line)}\n`) : undefined;
      const report = await runRepair(config, { dryRun: opts.dryRun === true, sinceMs: opts.since, progress });
      if (opts.json) printJson(report);
      else {
        const verb = (done: boolean) => (report.dryRun ? yellow('would') : done ? green('done') : red('failed'));
        for (const h of report.holes) {
          const outcome = h.outcome === 'repaired' ? green('repaired') : h.outcome === 'unrepairable' ? yellow('unrepairable') : h.outcome === 'would_refill' ? yellow('would refill') : red('still open');
          println(`${outcome} hole ${describeHole(h.hole)}: ${h.detail}`);
        }
        for (const a of report.data) println(`${verb(a.done)} ${a.kind} ${a.table}${a.server ? ` (${a.server})` : ''}${a.window ? ` ${a.window.start}..${a.window.end}` : ''}: ${a.detail}`);
        for (const l of report.locks) println(`${verb(l.removed)} remove ${l.path}: ${l.reason}`);
        for (const k of report.keptLocks) println(`${yellow('kept')} ${k.path}: ${k.reason}`);
        if (report.supervisor) println(`${verb(report.supervisor.done)} replace supervisor: ${report.supervisor.reason}`);
        for (const i of report.infra) println(`${verb(i.done)} start ${i.name}: down while it should run${i.detail ? ` -> ${i.detail}` : ''}`);
        for (const a of report.adopted) println(`${verb(a.done)} adopt ${a.daemon} (pid ${a.pid}): left running by the dead supervisor${a.detail ? ` -> ${a.detail}` : ''}`);
        for (const r of report.restarts) println(`${verb(r.done)} restart ${r.daemon}: ${r.reason}${r.detail ? ` -> ${r.detail}` : ''}`);
        for (const e of report.errors) println(red(e));
        const n = report.holes.length + report.data.length + report.locks.length + (report.supervisor ? 1 : 0) + report.infra.length + report.adopted.length + report.restarts.length;
        println(n === 0 && report.errors.length === 0 ? 'nothing to repair' : report.ok ? green(report.dryRun ? `${n} actions planned` : 'repaired') : red('repair incomplete'));
      }
      if (!report.ok) throw new CheckFailed();
    });
}
