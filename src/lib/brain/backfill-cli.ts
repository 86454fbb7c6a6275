import pg from 'pg';
import { supervisorView } from '../checks/status.js';
import type { Config } from '../config/schema.js';
import { UnreachableError } from '../errors.js';
import { displayAddress, postgresUrl } from '../infra/endpoints.js';
import type { BackfillScope } from './backfill-plan.js';
import { ProgressTable } from './history.js';
import { runBackfill, withBackfillLock, type BackfillEvent, type BackfillReport } from './history-init.js';
import { ensureBrainSchema } from './schema.js';

/**
 * `mprism backfill`: the brain's stages, run in this process over the same progress (PostgreSQL
 * job_progress, `init:` keys) under the same advisory lock, so it neither fights a running brain
 * nor fetches again what either of them confirmed. Ctrl-C stops it with the progress saved.
 */
export async function runBackfillCommand(config: Config, scope: BackfillScope, display?: { onEvent(e: BackfillEvent): void }): Promise<BackfillReport> {
  const url = postgresUrl(config);
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await ensureBrainSchema(pool).catch((err: unknown) => {
      throw new UnreachableError('PostgreSQL', displayAddress(url), { cause: err });
    });
    // The venues are the simulator's when the platform runs with --simulate.
    const simulate = (await supervisorView(config)).snapshot?.simulate ?? false;
    return await withBackfillLock(pool, () =>
      runBackfill({
        config, scope, progress: new ProgressTable(pool), signal: stop.signal, simulate, onEvent: display ? (e) => display.onEvent(e) : undefined,
        // Asked for by an operator: a table replication has not begun is replicated from its oldest history, no waiting.
        replicationStartTimeoutMs: 0,
      }),
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pool.end().catch(() => undefined);
  }
}
