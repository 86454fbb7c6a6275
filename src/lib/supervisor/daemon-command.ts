import { join } from 'node:path';
import { PACKAGE_ROOT, daemonKind, type DaemonKind, type DaemonName } from '../paths.js';

const DAEMON_MAIN = join(PACKAGE_ROOT, 'dist', 'daemons', 'main.js');

/**
 * V8 flags each daemon runs with. The collector keeps hundreds of books while it allocates fast,
 * and V8 left to itself grew its heap to 3 to 4 times what was alive: 100 symbols on 4 venues held
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
  collector: ['--heap-growing-percent=20', '--max-semi-space-size=8'],
  brain: [],
};

/** The node arguments that run `name` (after any the caller puts first, such as a profiler's). */
export function daemonArgs(name: DaemonName): string[] {
  return [...DAEMON_NODE_ARGS[daemonKind(name)], DAEMON_MAIN, name];
}
