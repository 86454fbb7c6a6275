import { join } from 'node:path';
import { VENUES, type Config } from '../config/schema.js';
import { PACKAGE_ROOT, daemonKind, type DaemonKind, type DaemonName } from '../paths.js';

/** The compiled daemon entry point every daemon runs. */
export const DAEMON_MAIN = join(PACKAGE_ROOT, 'dist', 'daemons', 'main.js');

/**
 * V8 flags each daemon runs with (nodeFlags adds the collector's young generation). The collector
 * keeps hundreds of books while it allocates fast, and V8 left to itself grew its heap to 3 to 4
 * times what was alive: 100 symbols on 4 venues held
 * about 57 MB alive in an RSS of 320 to 380 MiB. A heap grown by at most 20% after each full
 * collection, and a smaller young generation, keep it near what it holds (about 170 to 210 MiB)
 * for more collector CPU in GC (about 3% of its time went to full collections). Storage is the
 * other way round: a batch's rows live from their message's arrival until the insert returns, a few
 * hundred ms, and with the default young generation they were copied and promoted first; a larger
 * one lets them die young (pipeline bench at 20,000 trades/s, medians: storage CPU per 1k trades
 * stored 0.013 -> 0.011 s; peak RSS 171-204 -> 206-231 MiB).
 */
export const DAEMON_NODE_ARGS: Readonly<Record<DaemonKind, readonly string[]>> = {
  simulator: [],
  storage: ['--max-semi-space-size=32'],
  replication: [],
  // Its young generation depends on the books it keeps: see COLLECTOR_SEMI_SPACE_MIB.
  collector: ['--heap-growing-percent=20'],
  brain: [],
};

/**
 * The collector's young generation, MiB per semi-space: small with many books (above), twice that
 * below MANY_BOOKS. A turn of its event loop reads many frames before their records are published,
 * and a larger young generation lets more of them die before they are copied: at 50,000 trades/s
 * with 12 books (pipeline bench, interleaved) 45,982 and 43,480 trades/s reached hot against 38,918
 * and 39,358, at 0.011-0.012 against 0.012-0.013 collector CPU s per 1k. With 400 books (100 symbols
 * on 4 venues) it took the collector's RSS from 179 to 198 MiB, past the 200 MB it is held to; 100
 * books hold about 12 MiB of levels more than 12. With every data type on those venues and Deribit
 * as well, 8 MiB peaked at 187 to 198 MiB (3 runs of 60 s) and 4 MiB at 180 and 181 (189 and 190
 * MB), for about 8% more collector CPU: 4 from MANY_BOOKS on.
 */
export const COLLECTOR_SEMI_SPACE_MIB = { fewBooks: 16, manyBooks: 4 } as const;
export const MANY_BOOKS = 100;

/** Books the collector keeps: the symbols of every enabled venue that collects orderbooks. */
export function configuredBooks(config: Pick<Config, 'collector'>): number {
  let books = 0;
  for (const venue of VENUES) {
    const v = config.collector.venues[venue];
    if (v.enabled && v.dataTypes.includes('orderbook')) books += v.symbols.length;
  }
  return books;
}

/** The V8 flags `name` runs with under `config`. */
export function nodeFlags(name: DaemonName, config: Pick<Config, 'collector'>): string[] {
  const kind = daemonKind(name);
  if (kind !== 'collector') return [...DAEMON_NODE_ARGS[kind]];
  const semiSpace = configuredBooks(config) < MANY_BOOKS ? COLLECTOR_SEMI_SPACE_MIB.fewBooks : COLLECTOR_SEMI_SPACE_MIB.manyBooks;
  return [...DAEMON_NODE_ARGS.collector, `--max-semi-space-size=${semiSpace}`];
}

/** The node arguments that run `name` under `config` (after any the caller puts first, such as a profiler's). */
export function daemonArgs(name: DaemonName, config: Pick<Config, 'collector'>): string[] {
  return [...nodeFlags(name, config), DAEMON_MAIN, name];
}
