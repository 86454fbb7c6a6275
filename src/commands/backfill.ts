import { Command } from 'commander';
import { loadConfig } from '../lib/config/load.js';
import { CheckFailed } from '../lib/errors.js';
import { dim, green, printJson, println, red, yellow } from './output.js';

const collect = (value: string) => value;

export function backfillCommand(): Command {
  return new Command('backfill')
    .description("fill history from the venues' REST in stages (funding rate, open interest, long/short ratios, DVOL, then trades if asked); resumable, shares its progress with the brain's history initialization")
    .option('--since <duration>', 'how far back (e.g. 12h, 7d; default brain.init.since)', collect)
    .option('--types <types>', 'only these data types, comma separated (funding_rate,open_interest,lsr_top_position,lsr_all_account,volatility_index,trade)', collect)
    .option('--venue <venue>', 'only this venue', collect)
    .option('--trades', 'trades too, after the other stages')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { since?: string; types?: string; venue?: string; trades?: boolean; json?: boolean }) => {
      const config = loadConfig();
      const plan = await import('../lib/brain/backfill-plan.js');
      // Flags first: a bad one is exit 2 before any server is asked.
      const scope = {
        sinceMs: opts.since === undefined ? plan.parseBackfillDuration(config.brain.init.since, 'brain.init.since') : plan.parseBackfillDuration(opts.since, '--since'),
        types: opts.types === undefined ? null : plan.parseBackfillTypes(opts.types.split(',').map((t) => t.trim()), '--types'),
        venue: opts.venue === undefined ? null : plan.parseBackfillVenue(opts.venue, '--venue', config),
        trades: opts.trades === true || config.brain.init.trades,
      };
      const { runBackfillCommand } = await import('../lib/brain/backfill-cli.js');
      const bar = !opts.json && process.stderr.isTTY ? progressBar() : undefined;
      const report = await runBackfillCommand(config, scope, bar);
      bar?.end();
      if (opts.json) printJson(report);
      else {
        for (const s of report.stages) {
          const state = s.state === 'done' ? green(s.state) : s.state === 'partial' ? yellow(s.state) : red(s.state);
          println(`${s.stage.padEnd(17)} ${state}  items ${s.items.done}/${s.items.total}${s.items.left ? `, ${s.items.left} left` : ''}${s.items.skipped ? `, ${s.items.skipped} skipped` : ''}  ${s.records} records, ${s.pages} pages`);
          for (const e of s.entries) {
            if (e.status === 'left') println(red(`  left ${e.key} after ${e.tries} tries: ${e.error ?? ''}`));
            else if (e.status === 'skipped') println(dim(`  skipped ${e.key}: ${e.note ?? ''}`));
            else if (e.note !== null) println(dim(`  ${e.key}: ${e.note}`));
          }
        }
        println(
          report.complete
            ? green(`backfilled ${report.range.from} .. ${report.range.to}: ${report.records} records`)
            : report.aborted
              ? yellow('stopped; the next run continues from the saved cursors')
              : red(`${report.left.length} item(s) left to the scheduled backfill; run again to retry them`),
        );
      }
      if (!report.complete) throw new CheckFailed();
    });
}

/** One line on stderr, rewritten in place: stage, items done, records. */
function progressBar() {
  const width = 24;
  let line = '';
  const draw = (text: string) => {
    line = text;
    process.stderr.write(`\r\x1b[2K${dim(text)}`);
  };
  const state = { stage: '', done: 0, total: 0, records: 0 };
  const render = () => {
    const filled = state.total === 0 ? width : Math.round((state.done / state.total) * width);
    draw(`${state.stage.padEnd(17)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${state.done}/${state.total} items, ${state.records} records`);
  };
  return {
    onEvent(e: { kind: 'stage'; stage: string; items: number } | { kind: 'page'; records: number } | { kind: 'item' }) {
      if (e.kind === 'stage') {
        if (line !== '') process.stderr.write('\n');
        Object.assign(state, { stage: e.stage, done: 0, total: e.items });
      } else if (e.kind === 'page') state.records += e.records;
      else state.done++;
      render();
    },
    end() {
      if (line !== '') process.stderr.write('\n');
    },
  };
}
