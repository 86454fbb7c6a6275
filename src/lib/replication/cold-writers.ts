import pg from 'pg';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { postgresUrl } from '../infra/endpoints.js';

/** Arbitrary constant: the PostgreSQL advisory lock of the writers into cold behind replication. */
const COLD_WRITE_LOCK_KEY = 0x6d707263;
/** A copy holds the lock for seconds; waiting longer means something hangs. */
const WAIT_MS = 10 * 60_000;

/**
 * Runs `work` while no other process writes into cold behind replication: repair's window re-copy,
 * retention's copy of what cold lacks and backfill's copy of its history may cover one window, and
 * two copies of one window at once can both insert a key cold lacks (a duplicate integrity reports).
 * Replication itself copies only at and ahead of its watermark and its late-data window, which the
 * others leave alone. PostgreSQL unreachable: the work runs anyway (repair must work when it is
 * down), and `onUnlocked` says so.
 */
export async function withColdWriteLock<T>(config: Config, work: () => Promise<T>, onUnlocked: (why: string) => void = () => {}): Promise<T> {
  const client = new pg.Client({ connectionString: postgresUrl(config), connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined); // a lost connection ends the lock; the work goes on
  try {
    await client.connect();
    await client.query(`SET statement_timeout = ${WAIT_MS}`);
    await client.query('SELECT pg_advisory_lock($1)', [COLD_WRITE_LOCK_KEY]);
  } catch (err) {
    await client.end().catch(() => undefined);
    onUnlocked(`cold writes not serialized (PostgreSQL: ${errorMessage(err)})`);
    return work();
  }
  try {
    return await work();
  } finally {
    // Ending the session releases the lock too.
    await client.end().catch(() => undefined);
  }
}
