import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { detectDialect, type ClickHouseClient } from '../store/client.js';
import { streamFor } from '../bus/streams.js';
import { countBuckets, earliestTime } from '../store/queries.js';
import { engineFor, ensureSchema, TABLES, type TableSpec } from '../store/tables.js';
import { copyQueryIdPrefix, copyWindow } from './copy.js';
import type { ReplicationMetrics, WindowResult } from './metrics.js';
import type { SharedWatermarks } from './watermarks.js';
import { runningQueries } from '../store/watermarks.js';
import { mergeWindows, planWindows, windowToIso } from './windows.js';

/** errors_total label for failures before any table is touched (server down, schema not creatable, watermarks unreadable). */
export const SCHEMA_ERROR_LABEL = 'schema';
/** Windows planned per table and cycle; a cycle that hits it runs again at once instead of waiting a poll. */
const MAX_WINDOWS_PER_CYCLE = 600;
/** Largest span copied in one statement: bounds the NOT IN key set the cold server holds in memory. */
const MAX_SPAN_MS = 15 * 60_000;

type LastResult = WindowResult | 'error' | 'idle' | 'fenced';

/** How long a new holder waits for a copy the previous one left running on cold (its max_execution_time is 50 s). */
const PREVIOUS_COPY_WAIT_MS = 70_000;

export interface ReplicationError {
  /** null when the failure was not specific to a table (schema preparation). */
  table: string | null;
  message: string;
  at: string;
}

export type ReplicationHealth = {
  /**
   * Schema ready and no table's last attempt failed. A window that did not verify is a data problem for
   * `mprism integrity`/`repair`, not a broken daemon, so it is listed in `unverified` but keeps ok true.
   */
  ok: boolean;
  /** Seconds since each table's watermark, null before its first verified window. */
  lagSeconds: Record<string, number | null>;
  /** Tables whose last window came out short or excess, with that result. */
  unverified: Record<string, 'short' | 'excess'>;
  lastError: ReplicationError | null;
  /**
   * Tables this daemon copies now (it holds their leases), and those another daemon copies or none
   * does yet. A daemon holding none is a healthy standby.
   */
  leases: { held: string[]; standby: string[]; error: string | null };
};

/**
 * This daemon's side of the per-table leases (`replication:<table>`), as the replicator needs it.
 * Only the holder of a table's lease copies that table.
 */
export interface TableLeases {
  /** Names this daemon in the watermarks it writes. */
  holderId: string;
  /** The fence while the table's lease is held right now (checked against the clock), else null. */
  heldFence(table: string): number | null;
  /** Hands the table's lease back: a newer fence is recorded, so another daemon holds it. */
  release(table: string): Promise<void>;
  /** Why leases cannot be taken now (Redis unreachable), or null. */
  error(): string | null;
}

export interface CycleResult {
  /** Some table still had due windows left when the cycle ended. */
  backlog: boolean;
  errors: number;
}

export interface ReplicatorOptions {
  hot: ClickHouseClient;
  cold: ClickHouseClient;
  config: Config;
  store: SharedWatermarks;
  leases: TableLeases;
  /** The pre-lease local watermark file, carried into cold once (see SharedWatermarks.migrateFile). */
  legacyWatermarkFile?: string;
  log: Logger;
  metrics: ReplicationMetrics;
  signal: AbortSignal;
  now?: () => number;
  /**
   * Event time before which storage has written everything of a stream (null: all caught up).
   * Windows never close past it, so a storage outage cannot let the watermark run ahead of the data.
   */
  ingestFloor?: (stream: string) => Promise<number | null>;
}

/**
 * Moves closed windows hot -> cold, table by table, advancing a table's watermark only after its cold
 * window verified. A window that fails verification is retried next cycle one window at a time.
 */
export class Replicator {
  private schemaReady = false;
  private readonly lastResult = new Map<string, LastResult>();
  private readonly singleWindow = new Set<string>();
  private lastError: ReplicationError | null = null;
  /** table -> the lease fence already recorded in cold for this daemon's current term. */
  private readonly claimed = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly o: ReplicatorOptions) {
    this.now = o.now ?? Date.now;
  }

  async runCycle(): Promise<CycleResult> {
    if (!this.schemaReady) {
      try {
        await this.prepareSchema();
      } catch (err) {
        this.o.metrics.errors.inc({ table: SCHEMA_ERROR_LABEL });
        this.recordError(null, err);
        return { backlog: false, errors: 1 };
      }
    }
    let backlog = false;
    let errors = 0;
    try {
      // Another daemon may have moved any table's watermark: lag and planning start from cold's.
      await this.o.store.refresh();
    } catch (err) {
      this.o.metrics.errors.inc({ table: SCHEMA_ERROR_LABEL });
      this.recordError(null, err);
      return { backlog: false, errors: 1 };
    }
    const floors = new Map<string, Promise<number | null>>();
    const floorOf = (stream: string) => {
      if (!this.o.ingestFloor) return Promise.resolve(null);
      if (!floors.has(stream)) floors.set(stream, this.o.ingestFloor(stream));
      return floors.get(stream)!;
    };
    for (const spec of TABLES) {
      if (this.o.signal.aborted) break;
      const fence = this.o.leases.heldFence(spec.table);
      if (fence === null) {
        // Another daemon copies it (or nobody yet): no status of ours to report for it.
        this.claimed.delete(spec.table);
        this.lastResult.delete(spec.table);
        continue;
      }
      try {
        if (!(await this.takeOver(spec, fence))) continue;
        backlog = (await this.replicateTable(spec, fence, await floorOf(streamFor(spec.dataType)))) || backlog;
        await this.recopyLateWindows(spec, fence);
      } catch (err) {
        errors++;
        this.o.metrics.errors.inc({ table: spec.table });
        this.setStatus(spec.table, 'error');
        this.recordError(spec.table, err);
      }
    }
    if (errors === 0) this.lastError = null;
    return { backlog, errors };
  }

  health(): ReplicationHealth {
    const lagSeconds: Record<string, number | null> = {};
    const unverified: Record<string, 'short' | 'excess'> = {};
    const held: string[] = [];
    const standby: string[] = [];
    const leaseError = this.o.leases.error();
    // Standing by is no failure; not being able to reach the leases' Redis is.
    let ok = this.schemaReady && leaseError === null;
    for (const spec of TABLES) {
      lagSeconds[spec.table] = this.lagSeconds(spec.table);
      (this.o.leases.heldFence(spec.table) === null ? standby : held).push(spec.table);
      const last = this.lastResult.get(spec.table);
      if (last === 'error') ok = false;
      if (last === 'short' || last === 'excess') unverified[spec.table] = last;
    }
    return { ok, lagSeconds, unverified, lastError: this.lastError, leases: { held, standby, error: leaseError } };
  }

  lagSeconds(table: string): number | null {
    const w = this.o.store.get(table);
    return w === null ? null : Math.max(0, (this.now() - w) / 1000);
  }

  private async prepareSchema(): Promise<void> {
    const { hot, cold, config, log, store } = this.o;
    for (const [name, client, server] of [
      ['hot', hot, config.clickhouse.hot],
      ['cold', cold, config.clickhouse.cold],
    ] as const) {
      const dialect = await detectDialect(client);
      const { created } = await ensureSchema(client, server.database, dialect, engineFor(server));
      log.info({ server: name, version: dialect.version, created }, 'schema ready');
    }
    await store.ensure();
    if (this.o.legacyWatermarkFile !== undefined) {
      // A corrupt file throws here, every cycle: replication must not start from a guessed position.
      const carried = await store.migrateFile(this.o.legacyWatermarkFile, this.o.leases.holderId);
      if (carried.length > 0) log.info({ tables: carried, file: this.o.legacyWatermarkFile }, 'carried the local watermark file into cold');
    }
    this.schemaReady = true;
  }

  /**
   * First cycle of a new lease term for the table: record its fence in cold, then wait until no copy
   * into the table runs on cold any more. A previous holder that lost its lease while paused or cut
   * off may have left a copy statement running; one it sends after the fence is recorded inserts
   * nothing (copySql). After that no statement of an older holder can insert into the table.
   * False when a newer fence is already recorded: the lease has passed on again, it is handed back.
   */
  private async takeOver(spec: TableSpec, fence: number): Promise<boolean> {
    const { cold, config, store, log, leases } = this.o;
    if (this.claimed.get(spec.table) === fence) return true;
    if ((await store.claim(spec.table, fence, leases.holderId)) === 'fenced') {
      await this.fenced(spec, fence);
      return false;
    }
    const prefix = copyQueryIdPrefix(config.clickhouse.cold.database, spec.table);
    const deadline = Date.now() + PREVIOUS_COPY_WAIT_MS;
    while ((await runningQueries(cold, prefix)) > 0) {
      if (Date.now() > deadline) throw new Error(`a copy into ${spec.table} still runs on cold after ${PREVIOUS_COPY_WAIT_MS / 1000} s`);
      if (this.o.signal.aborted) return false;
      await new Promise((r) => setTimeout(r, 200));
    }
    this.claimed.set(spec.table, fence);
    log.info({ table: spec.table, fence, watermark: store.get(spec.table) }, 'copying this table: its lease is ours');
    return true;
  }

  private async fenced(spec: TableSpec, fence: number): Promise<void> {
    this.o.log.warn({ table: spec.table, fence }, 'a newer lease fence is recorded in cold: another daemon copies this table; handing the lease back');
    this.setStatus(spec.table, 'fenced');
    this.claimed.delete(spec.table);
    await this.o.leases.release(spec.table);
  }

  /** Returns true when due windows remain after this pass. */
  private async replicateTable(spec: TableSpec, fence: number, ingestFloor: number | null): Promise<boolean> {
    const { hot, cold, config, store, log, metrics, leases } = this.o;
    const windowMs = config.replication.windowSeconds * 1000;
    const watermark = store.get(spec.table);
    const earliestData = watermark === null ? await earliestTime(hot, config.clickhouse.hot.database, spec) : null;
    const windows = planWindows({
      watermark,
      earliestData,
      // planWindows closes windows up to now - safetyLag; capping now keeps them behind the floor too.
      now: ingestFloor === null ? this.now() : Math.min(this.now(), ingestFloor + config.replication.safetyLagSeconds * 1000),
      windowMs,
      safetyLagMs: config.replication.safetyLagSeconds * 1000,
      maxWindows: MAX_WINDOWS_PER_CYCLE,
    });
    if (windows.length === 0) {
      this.setStatus(spec.table, 'idle');
      return false;
    }
    const perSpan = this.singleWindow.has(spec.table) ? 1 : Math.max(1, Math.floor(MAX_SPAN_MS / windowMs));
    for (const span of mergeWindows(windows, perSpan)) {
      if (this.o.signal.aborted) return true;
      // Checked before every copy: the lease may have lapsed during the last one.
      if (leases.heldFence(spec.table) !== fence) return false;
      const started = Date.now();
      const r = await copyWindow(hot, cold, config, spec, span, fence);
      const count = Math.round((span.end - span.start) / windowMs) || 1;
      const result: WindowResult = r.verified ? 'verified' : r.coldCount < r.hotCount ? 'short' : 'excess';
      metrics.windows.inc({ table: spec.table, result }, count);
      metrics.rowsCopied.inc({ table: spec.table }, Math.max(0, r.copied));
      const detail = { table: spec.table, ...windowToIso(span), windows: count, ...r, ms: Date.now() - started };
      this.setStatus(spec.table, result);
      if (!r.verified) {
        // Short: rows reached hot during the copy, retried next poll. Excess: cold holds duplicates or keys
        // hot lacks; `mprism repair` resolves it, and until then the watermark stays put. Either way the
        // next attempt goes window by window so one bad window does not hold back a whole span.
        log.warn(detail, `window ${result}: watermark not advanced`);
        this.singleWindow.add(spec.table);
        return false;
      }
      if ((await store.advance(spec.table, span.end, fence, leases.holderId)) === 'fenced') {
        await this.fenced(spec, fence);
        return false;
      }
      this.singleWindow.delete(spec.table);
      // Written while the lease still held (by the clock, after the write): the next holder's claim
      // comes later and it resumes past this window, which is then replicated by this daemon alone.
      // Otherwise (paused past the lease meanwhile) the value written is still true, but the next
      // holder may have copied the window too: said so, and this table is left to it.
      if (leases.heldFence(spec.table) !== fence) {
        log.warn(detail, 'window replicated, but the lease lapsed meanwhile: leaving the table to the next holder');
        return false;
      }
      log.info(detail, 'window replicated');
    }
    return windows.length === MAX_WINDOWS_PER_CYCLE;
  }

  /**
   * Rows can reach hot after their window was copied: storage was down longer than the safety lag,
   * or a batch was redelivered. Windows within lateDataSeconds behind the watermark are compared
   * (one grouped count per server) and a window with keys cold lacks is copied again; the copy only
   * inserts the missing keys. Older late rows are left to `mprism integrity` / `repair`.
   */
  private async recopyLateWindows(spec: TableSpec, fence: number): Promise<void> {
    const { hot, cold, config, log, metrics } = this.o;
    const watermark = this.o.store.get(spec.table);
    const horizonMs = config.replication.lateDataSeconds * 1000;
    if (watermark === null || horizonMs === 0) return;
    const windowMs = config.replication.windowSeconds * 1000;
    const range = { start: Math.max(0, watermark - horizonMs), end: watermark };
    const [hotBuckets, coldBuckets] = await Promise.all([
      countBuckets(hot, config.clickhouse.hot.database, spec, range, windowMs),
      countBuckets(cold, config.clickhouse.cold.database, spec, range, windowMs),
    ]);
    const coldDistinct = new Map(coldBuckets.map((b) => [b.start, b.distinct]));
    for (const b of hotBuckets) {
      if (this.o.signal.aborted || this.o.leases.heldFence(spec.table) !== fence) return;
      if (b.distinct <= (coldDistinct.get(b.start) ?? 0)) continue;
      const w = { start: b.start, end: b.start + windowMs };
      const r = await copyWindow(hot, cold, config, spec, w, fence);
      metrics.windows.inc({ table: spec.table, result: 'late' });
      metrics.rowsCopied.inc({ table: spec.table }, Math.max(0, r.copied));
      log.info({ table: spec.table, ...windowToIso(w), ...r }, 'late rows copied to an already replicated window');
    }
  }

  private setStatus(table: string, result: LastResult): void {
    this.lastResult.set(table, result);
  }

  private recordError(table: string | null, err: unknown): void {
    this.lastError = { table, message: errorMessage(err), at: new Date(this.now()).toISOString() };
    this.o.log.error({ table, err }, 'replication failed');
  }
}
