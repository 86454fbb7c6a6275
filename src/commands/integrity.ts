import { Command } from 'commander';
import { describeHole } from '../lib/checks/hole-report.js';
import type { IntegrityReport } from '../lib/checks/integrity.js';
import { loadConfig } from '../lib/config/load.js';
import { CheckFailed, UsageError } from '../lib/errors.js';
import { dim, green, parseDuration, printJson, println, red, stateColor, table, yellow } from './output.js';

export function parseSince(text: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function render(r: IntegrityReport, verbose: boolean): void {
  println(table(
    ['TABLE', 'HOT', 'COLD', 'DUP HOT', 'DUP COLD', 'FRESHNESS', 'LAG', 'WINDOWS ok/short/excess/pending'],
    r.tables.map((t) => {
      const count = (s: string) => t.windows.filter((w) => w.status === s).length;
      return [
        t.table, String(t.hotRows), String(t.coldRows), String(t.hotDuplicates), String(t.coldDuplicates),
        t.freshnessSeconds === null ? '-' : `${Math.round(t.freshnessSeconds)}s`,
        t.replicationLagSeconds === null ? '-' : `${Math.round(t.replicationLagSeconds)}s`,
        `${count('ok')}/${count('short')}/${count('excess')}/${count('pending')}`,
      ];
    }),
  ));
  for (const t of r.tables) {
    const shown = verbose ? t.windows : t.windows.filter((w) => w.status === 'short' || w.status === 'excess');
    for (const w of shown) println(`  ${t.table} ${w.start} .. ${w.end}: hot ${w.hot}, cold ${w.cold} ${stateColor(w.status)}`);
    for (const p of t.problems) println(red(`  ${t.table}: ${p}`));
  }
  for (const p of r.problems) println(red(`  ${p}`));
  for (const w of r.warnings) println(yellow(`  ${w}`));
  if (verbose) for (const h of r.holes.filter((h) => h.state === 'repaired')) println(`  hole: ${describeHole(h)}: repaired (${h.detail})`);
  if (verbose) for (const g of r.bookGaps) println(`  gap ${g.at} ${g.venue} ${g.symbol} ${g.reason}: ${g.detail}`);
  const { open, repaired, unrepairable } = r.holeCounts;
  println(dim(`since ${r.since}; holes: ${open} open, ${repaired} repaired, ${unrepairable} unrepairable`));
  println(r.ok ? green('integrity ok') : red("integrity problems found: run 'mprism repair'"));
}

export function integrityCommand(): Command {
  return new Command('integrity')
    .description('hot vs cold counts per closed window, duplicates, lag and freshness per table (exit 0 ok, 1 problems)')
    .option('--since <duration>', 'how far back to check (e.g. 15m, 2h, 1d)', parseSince, 3_600_000)
    .option('--verbose', 'list every window, not only the bad ones')
    .option('--json', 'print as JSON')
    .action(async (opts: { since: number; verbose?: boolean; json?: boolean }) => {
      const config = loadConfig();
      const { runIntegrity } = await import('../lib/checks/integrity.js');
      const report = await runIntegrity(config, { sinceMs: opts.since });
      if (opts.json) printJson(report);
      else render(report, opts.verbose === true);
      if (!report.ok) throw new CheckFailed();
    });
}
