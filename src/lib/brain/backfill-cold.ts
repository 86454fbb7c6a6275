import type { NatsConnection } from 'nats';
import type { Config, DataType } from '../config/schema.js';
import { MprismError } from '../errors.js';
import { sleep } from '../backoff.js';
import { isJetStreamNotFound, JS_CONSUMER_NOT_FOUND } from '../bus/connection.js';
import { MARKET_DATA_STREAM, storageDurable } from '../bus/streams.js';
import { withColdWriteLock } from '../replication/cold-writers.js';
import { copyWindow } from '../replication/copy.js';
import { SharedWatermarks } from '../replication/watermarks.js';
import { createClickHouse } from '../store/client.js';
import { engineFor, tableFor } from '../store/tables.js';

/** What backfill copied to cold itself, per table. */
export interface ColdCopy {
  table: string;
  /** The range copied, ISO; null when replication has not started on the table (it will copy it all itself). */
  from: string | null;
  to: string | null;
  copied: number;
  verified: boolean;
}

const DAY_MS = 86_400_000;
/** Storage inserts a batch within seconds; this bounds a wait on a storage that is down. */
const STORED_TIMEOUT_MS = 5 * 60_000;

/**
 * History that backfill published lands in hot behind replication's watermark, where replication
 * never looks again (it re-checks only lateDataSeconds behind it): integrity would then report those
 * windows short and retention would keep their partitions. So once storage has acked everything
 * published so far (its consumer's ack floor is past the stream's last message), backfill copies the
 * range up to the late-data window hot -> cold itself, day by day, with replication's own verified,
 * idempotent window copy; replication's late-data pass copies the rest.
 */
export async function copyBackfillToCold(
  config: Config,
  nc: NatsConnection,
  dataTypes: ReadonlySet<DataType>,
  range: { fromMs: number; toMs: number },
  signal: AbortSignal,
): Promise<ColdCopy[]> {
  const jsm = await nc.jetstreamManager();
  const target = (await jsm.streams.info(MARKET_DATA_STREAM)).state.last_seq;
  const deadline = Date.now() + STORED_TIMEOUT_MS;
  for (;;) {
    const floor = await jsm.consumers.info(MARKET_DATA_STREAM, storageDurable(MARKET_DATA_STREAM)).then(
      (info) => info.ack_floor.stream_seq,
      (err: unknown) => {
        if (isJetStreamNotFound(err, JS_CONSUMER_NOT_FOUND)) throw new MprismError('storage has never run (no consumer on MARKET_DATA): the history waits in JetStream', { cause: err });
        throw err;
      },
    );
    if (floor >= target) break;
    if (signal.aborted) throw new MprismError('stopped while waiting for storage to store the backfilled history');
    if (Date.now() > deadline) {
      throw new MprismError(`storage has not stored the backfilled history within ${STORED_TIMEOUT_MS / 1000} s (acked up to ${floor} of ${target}); integrity will show the windows short until it does and repair copies them`);
    }
    await sleep(500, signal);
  }

  const hot = createClickHouse(config.clickhouse.hot);
  const cold = createClickHouse(config.clickhouse.cold);
  const out: ColdCopy[] = [];
  try {
    const watermarks = new SharedWatermarks(cold, config.clickhouse.cold.database, engineFor(config.clickhouse.cold));
    await watermarks.refresh();
    for (const dataType of dataTypes) {
      const spec = tableFor(dataType);
      const watermark = watermarks.get(spec.table);
      // The late-data window behind the watermark is replication's to re-check: copying there too
      // could race it, and two copies of one window at once may both insert a key.
      const end = watermark === null ? range.fromMs : Math.min(range.toMs + 1, watermark - config.replication.lateDataSeconds * 1000);
      if (end <= range.fromMs) {
        out.push({ table: spec.table, from: null, to: null, copied: 0, verified: true });
        continue;
      }
      const copy: ColdCopy = { table: spec.table, from: new Date(range.fromMs).toISOString(), to: new Date(end).toISOString(), copied: 0, verified: true };
      await withColdWriteLock(config, async () => {
        for (let start = range.fromMs; start < end; start += DAY_MS) {
          // The brain may lose its lease meanwhile: stop between windows, never report a part as the whole.
          if (signal.aborted) throw new MprismError(`stopped while copying backfilled history to cold (${spec.table} copied up to ${new Date(start).toISOString()})`);
          const r = await copyWindow(hot, cold, config, spec, { start, end: Math.min(end, start + DAY_MS) });
          copy.copied += r.copied;
          copy.verified &&= r.verified;
        }
      });
      out.push(copy);
    }
  } finally {
    await Promise.all([hot.close(), cold.close()]);
  }
  return out;
}

/** How long backfill waits for replication to begin a table before it writes history into it anyway. */
const REPLICATION_START_TIMEOUT_MS = 5 * 60_000;

/**
 * Waits until replication has a watermark for every one of these tables (or the timeout passes:
 * false). Replication starts a table at its oldest row, so history written into a table it has not
 * begun would make it start days back and copy all of that first, behind by days meanwhile (a
 * replication-lag alert at first start). Begun at the live data, it leaves the history behind its
 * watermark to backfill's own copy.
 */
export async function awaitReplicationStart(config: Config, dataTypes: ReadonlySet<DataType>, signal: AbortSignal, timeoutMs = REPLICATION_START_TIMEOUT_MS): Promise<boolean> {
  const tables = [...dataTypes].map((t) => tableFor(t).table);
  const deadline = Date.now() + timeoutMs;
  const cold = createClickHouse(config.clickhouse.cold);
  const watermarks = new SharedWatermarks(cold, config.clickhouse.cold.database, engineFor(config.clickhouse.cold));
  try {
    for (;;) {
      // Cold unreachable: not begun as far as anyone can tell; the deadline ends the wait.
      await watermarks.refresh().catch(() => undefined);
      if (tables.every((t) => watermarks.get(t) !== null)) return true;
      if (signal.aborted || Date.now() > deadline) return false;
      await sleep(1000, signal);
    }
  } finally {
    await cold.close();
  }
}
