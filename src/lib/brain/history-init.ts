import type pg from 'pg';
import { Counter, Registry } from 'prom-client';
import { boundedSignal } from '../abort.js';
import { backoffDelay, sleep, type BackoffPolicy } from '../backoff.js';
import { connectNats } from '../bus/connection.js';
import { Publisher } from '../bus/publisher.js';
import { publishPage, VenueHistory } from '../checks/hole-repair.js';
import { awaitReplicationStart, copyBackfillToCold, type ColdCopy } from './backfill-cold.js';
import type { Config, Venue } from '../config/schema.js';
import { errorMessage, MprismError } from '../errors.js';
import { historyPages } from '../exchanges/history-paging.js';
import { pollOptions } from '../exchanges/registry.js';
import { joinUrl, type HistoryDataType, type HistoryQuery, type HistorySource } from '../exchanges/types.js';
import type { Logger } from '../log.js';
import type { ActionRunner, BrainDeps, ProgressStore } from './actions.js';
import type { JobResult } from './jobs.js';
import type { TriggerResult } from './task-scheduler.js';
import { json, type Route } from './api.js';
import {
  EMPTY_ITEM,
  INIT_RUN_KEY,
  ITEM_KEY_PREFIX,
  boundByHorizon,
  completeFill,
  coversInit,
  initScope,
  itemStatus,
  nextFill,
  planStages,
  readItemState,
  runRange,
  scopeFromParams,
  stageState,
  windowEnd,
  WINDOW_MS,
  type BackfillScope,
  type Fill,
  type InitStage,
  type ItemState,
  type ItemStatus,
  type PlannedItem,
  type StageState,
} from './backfill-plan.js';

/*
 * `mprism backfill --json` and the backfill action's result (stable shape):
 * { "complete": true, "aborted": false, "range": { "from": ISO, "to": ISO },
 *   "records": 1234, "pages": 56,
 *   "stages": [ { "stage": "funding_rate", "state": "done" | "partial" | "running" | "pending",
 *                 "items": { "done": 4, "left": 0, "skipped": 0, "total": 4 }, "records": 40, "pages": 8,
 *                 "entries": [ ItemReport ] } ],
 *   "left": [ ItemReport ], "cold": { "tables": [ ColdCopy ], "error": null | string },
 *   "note": null | "another backfill is running; this one did nothing" }
 * ItemReport: { "key", "venue", "dataType", "instrument", "status": "done" | "left" | "skipped" | "running" | "pending",
 *               "records", "pages" (this run), "tries", "error", "note" }
 */

export interface ItemReport {
  key: string;
  venue: Venue;
  dataType: HistoryDataType;
  instrument: string;
  status: ItemStatus;
  /** Published and confirmed by JetStream in this run. */
  records: number;
  pages: number;
  tries: number;
  error: string | null;
  /** What bounded or prevented it (the venue's horizon, no history by time): said, not an error. */
  note: string | null;
}

export interface StageReport {
  stage: InitStage;
  state: StageState;
  items: { done: number; left: number; skipped: number; total: number };
  records: number;
  pages: number;
  entries: ItemReport[];
}

export interface BackfillReport {
  /** Every item done or skipped (with the reason): nothing left to the scheduled backfill. */
  complete: boolean;
  /** Stopped by the signal: progress is saved, the next run continues. */
  aborted: boolean;
  range: { from: string; to: string };
  records: number;
  pages: number;
  stages: StageReport[];
  left: ItemReport[];
  /** The history copied to cold by the run itself (see copyBackfillToCold); error: the copy failed, repair will do it. */
  cold: { tables: ColdCopy[]; error: string | null };
  /** Why the run did nothing (another backfill held the lock); null for a run that ran. */
  note: string | null;
}

/** The brain's backfill found another one running: that one covers the same items from the same cursors. */
export const BACKFILL_BUSY_NOTE = 'another backfill is running; this one did nothing';

function emptyReport(range: { fromMs: number; toMs: number }, note: string | null): BackfillReport {
  return {
    complete: false,
    aborted: false,
    range: { from: new Date(range.fromMs).toISOString(), to: new Date(range.toMs).toISOString() },
    records: 0,
    pages: 0,
    stages: [],
    left: [],
    cold: { tables: [], error: null },
    note,
  };
}

/** What a progress display is told as the run goes. */
export type BackfillEvent =
  | { kind: 'stage'; stage: InitStage; items: number }
  | { kind: 'page'; stage: InitStage; key: string; records: number; url: string; fraction: number }
  | { kind: 'item'; stage: InitStage; item: ItemReport };

export interface BackfillOptions {
  config: Config;
  scope: BackfillScope;
  progress: ProgressStore;
  signal: AbortSignal;
  /** History from the local simulator (a platform started with --simulate). */
  simulate: boolean;
  log?: Logger;
  onEvent?: (event: BackfillEvent) => void;
  now?: () => number;
  /** Between failed tries of one item. */
  retry?: BackoffPolicy;
  windowMs?: number;
  /** How long a stage waits for replication to begin its tables (see awaitReplicationStart). */
  replicationStartTimeoutMs?: number;
}

const DEFAULT_RETRY: BackoffPolicy = { initialMs: 1000, maxMs: 60_000, jitter: 0.2 };

/** The signal stopped the run; what was confirmed is saved. */
class BackfillAborted extends MprismError {}

/**
 * Fills history stage by stage (funding rate, open interest, long/short ratios, DVOL, then trades
 * when asked), each stage's items `concurrency` at a time, every venue within its share of its rate
 * limit. Each page is published through JetStream (the live Msg-Ids, so storage keeps one copy) and
 * only once JetStream confirmed it is the item's cursor saved: a run stopped at any point continues
 * from there, fetching no confirmed page again. An item failing maxTries times in a row is left
 * (its cursor and error saved) to the scheduled backfill, and the stage goes on.
 */
export async function runBackfill(opts: BackfillOptions): Promise<BackfillReport> {
  const { config, scope, progress } = opts;
  const now = opts.now ?? Date.now;
  const range = runRange(now(), scope.sinceMs);
  const options = pollOptions(config);
  const windowMs = opts.windowMs ?? WINDOW_MS;
  // Aborted on the first error of a worker, so the others stop before the run (and its lock) ends.
  const failure = new AbortController();
  // One listener per item in flight and per publish: bounded by the stages' concurrency.
  const { signal, release } = boundedSignal(AbortSignal.any([opts.signal, failure.signal]), 64);
  const venues = new Map<Venue, VenueHistory>();
  const venueOf = (v: Venue) => {
    let h = venues.get(v);
    // One try per request: an item's failures are retried by the item loop, with its own backoff and bound.
    if (h === undefined) venues.set(v, (h = new VenueHistory(config, v, opts.simulate, signal, 1)));
    return h;
  };
  const nc = await connectNats(config, 'backfill');
  const publisher = new Publisher(nc, { metrics: new Registry(), component: 'backfill', signal });
  const report = emptyReport(range, null);

  // One copy at a time: two copies of one window at once could both insert a key cold lacks.
  let coldCopies: Promise<unknown> = Promise.resolve();
  const copyToCold = (item: PlannedItem, want: { fromMs: number; toMs: number }) => {
    const copy = coldCopies.then(async () => {
      try {
        report.cold.tables.push(...(await copyBackfillToCold(config, nc, new Set([item.dataType]), want, signal)));
      } catch (err) {
        if (signal.aborted) return;
        report.cold.error = `${item.key}: ${errorMessage(err)}`;
        opts.log?.warn({ item: item.key, err: report.cold.error }, 'backfilled history not copied to cold; integrity will show it and repair copies it');
      }
    });
    coldCopies = copy;
    return copy;
  };

  const runItem = async (item: PlannedItem): Promise<ItemReport> => {
    const venue = venueOf(item.venue);
    const source = venue.adapter.history[item.dataType];
    const out: ItemReport = { key: item.key, venue: item.venue, dataType: item.dataType, instrument: item.instrument, status: 'pending', records: 0, pages: 0, tries: 0, error: null, note: null };
    let state = readItemState(await progress.load(item.key));
    const save = async (s: ItemState) => {
      state = s;
      await progress.save(item.key, s);
    };
    const skip = skipReason(source, venue, item);
    if (skip !== null || source === undefined) {
      await save({ ...state, skipped: skip, fill: null, left: false });
      return { ...out, status: 'skipped', note: skip };
    }
    const want = boundByHorizon(range, now(), source.horizonMs?.(options), source.endpoint);
    // A new run tries a left item again, from its saved cursor.
    await save({ ...state, skipped: null, left: false, tries: 0, note: want.note });
    out.note = want.note;

    for (let fill = nextFill(state, want); fill !== null; fill = nextFill(state, want)) {
      try {
        await fetchFill(fill);
        await save(completeFill(state, state.fill ?? fill));
      } catch (err) {
        if (signal.aborted) throw new BackfillAborted('stopped', { cause: err });
        const tries = state.tries + 1;
        await save({ ...state, tries, lastError: errorMessage(err), lastErrorAt: new Date(now()).toISOString(), left: tries >= config.brain.init.maxTries });
        out.tries = tries;
        out.error = errorMessage(err);
        opts.log?.warn({ item: item.key, tries, err: out.error }, state.left ? 'history item left to the scheduled backfill' : 'history item failed, retrying');
        if (state.left) {
          // What it did publish is in hot: cold gets it too.
          await copyToCold(item, coveredRange(state, want));
          return { ...out, status: 'left' };
        }
        await sleep(backoffDelay(tries - 1, opts.retry ?? DEFAULT_RETRY), signal);
        if (signal.aborted) throw new BackfillAborted('stopped');
      }
    }
    // Errors of earlier tries are history once the item is done.
    await save({ ...state, tries: 0, lastError: null, lastErrorAt: null });
    await copyToCold(item, coveredRange(state, want));
    return { ...out, status: itemStatus(state), error: null };

    /** Window by window, page by page: each page's records confirmed by JetStream before its cursor is saved. */
    async function fetchFill(initial: Fill): Promise<void> {
      let fill = initial;
      await save({ ...state, fill });
      const base = venue.baseUrl;
      while (fill.cursor < fill.toMs) {
        const end = windowEnd(fill, windowMs);
        const query: HistoryQuery = { instrument: item.instrument, fromMs: fill.cursor + 1, toMs: end, fromId: null, toId: null };
        const first = (source as HistorySource).request(base, query, venue.credentials, options);
        const start = fill.next === null ? null : { ...first, url: joinUrl(base, fill.next) };
        const pages = historyPages(source as HistorySource, base, query, venue.credentials, options, (req) => venue.get(req), undefined, start);
        for await (const page of pages) {
          const records = await venue.inCoins(page.records);
          const confirmed = records.length === 0 ? 0 : await publishPage(publisher, records);
          if (confirmed < records.length) throw new MprismError(`JetStream confirmed ${confirmed} of ${records.length} records of ${item.key}`);
          const url = page.next?.url ?? null;
          fill = url === null ? { ...fill, cursor: end, next: null } : { ...fill, next: relativeTo(base, url) };
          await save({ ...state, fill, records: state.records + records.length, pages: state.pages + 1, tries: 0 });
          out.records += records.length;
          out.pages++;
          opts.onEvent?.({ kind: 'page', stage: item.stage, key: item.key, records: records.length, url: url ?? '', fraction: (fill.cursor - fill.fromMs + 1) / (fill.toMs - fill.fromMs + 1) });
        }
        if (signal.aborted) throw new BackfillAborted('stopped');
      }
    }
  };

  try {
    for (const stage of planStages(config, scope)) {
      if (signal.aborted) break;
      opts.onEvent?.({ kind: 'stage', stage: stage.stage, items: stage.items.length });
      if (!(await awaitReplicationStart(config, new Set(stage.items.map((i) => i.dataType)), signal, opts.replicationStartTimeoutMs))) {
        opts.log?.warn({ stage: stage.stage }, 'replication has not begun every table of this stage; backfilling anyway (replication will start at the oldest history)');
      }
      const entries: ItemReport[] = new Array<ItemReport>(stage.items.length);
      let nextIndex = 0;
      let firstError: { err: unknown } | null = null;
      const worker = async () => {
        while (nextIndex < stage.items.length && !signal.aborted) {
          const i = nextIndex++;
          const item = stage.items[i] as PlannedItem;
          try {
            entries[i] = await runItem(item);
          } catch (err) {
            if (!(err instanceof BackfillAborted) && !signal.aborted) {
              // PostgreSQL or anything else unexpected: the other workers stop too, then the run fails.
              firstError = { err };
              failure.abort(err);
              return;
            }
            entries[i] = { ...blankReport(item), status: 'running' };
          }
          opts.onEvent?.({ kind: 'item', stage: stage.stage, item: entries[i] as ItemReport });
        }
      };
      // Every worker ends before the run does: none may fetch or publish once the lock is released.
      await Promise.allSettled(Array.from({ length: Math.min(stage.concurrency, stage.items.length) }, worker));
      if (firstError !== null) throw (firstError as { err: unknown }).err;
      const done = stage.items.map((item, i) => entries[i] ?? { ...blankReport(item), status: 'pending' as const });
      const count = (s: ItemStatus) => done.filter((e) => e.status === s).length;
      report.stages.push({
        stage: stage.stage,
        state: stageState(done.map((e) => e.status)),
        items: { done: count('done'), left: count('left'), skipped: count('skipped'), total: done.length },
        records: done.reduce((n, e) => n + e.records, 0),
        pages: done.reduce((n, e) => n + e.pages, 0),
        entries: done,
      });
    }
    report.aborted = signal.aborted;
    report.records = report.stages.reduce((n, s) => n + s.records, 0);
    report.pages = report.stages.reduce((n, s) => n + s.pages, 0);
    report.left = report.stages.flatMap((s) => s.entries.filter((e) => e.status === 'left'));
    const finished = !report.aborted && report.stages.every((s) => s.state === 'done' || s.state === 'partial');
    report.complete = finished && report.left.length === 0;
    if (finished && coversInit(scope, config)) {
      await progress.save(INIT_RUN_KEY, { finishedAt: new Date(now()).toISOString(), from: report.range.from, to: report.range.to, left: report.left.length });
    }
    return report;
  } finally {
    release();
    await publisher.flush().catch(() => undefined);
    await nc.drain().catch(() => undefined);
  }
}

/** All an item holds, earlier runs' ranges included: what cold must hold too. */
function coveredRange(state: ItemState, want: { fromMs: number; toMs: number }): { fromMs: number; toMs: number } {
  return { fromMs: Math.min(state.coveredFrom ?? want.fromMs, want.fromMs), toMs: Math.max(state.coveredTo ?? want.toMs, want.toMs) };
}

function blankReport(item: PlannedItem): ItemReport {
  return { key: item.key, venue: item.venue, dataType: item.dataType, instrument: item.instrument, status: 'pending', records: 0, pages: 0, tries: 0, error: null, note: null };
}

/** Why an item cannot be fetched by time at all; null: it can. */
function skipReason(source: HistorySource | undefined, venue: VenueHistory, item: PlannedItem): string | null {
  if (source === undefined) return `${item.venue} has no REST history of ${item.dataType}`;
  if (source.pagesBy === 'id') return `${source.endpoint} pages by trade id, and a range by time gives no id to start from (repair refills trade holes by id)`;
  return source.blockedReason(venue.credentials);
}

/** A next-page URL without the venue's base, so a saved cursor survives a changed host or port. */
function relativeTo(base: string, url: string): string {
  const b = base.replace(/\/+$/, '');
  if (!url.startsWith(b)) throw new MprismError(`next page ${url} is not under the venue's REST base ${b}`);
  return url.slice(b.length);
}

// --- one backfill at a time -------------------------------------------------------------------

/** pg_advisory_lock key of backfills ('mprism-bf' as an integer): the brain's and the CLI's share progress keys. */
const BACKFILL_LOCK_KEY = 0x6d7072_69736d;

/** Another backfill (the brain's initialization, a scheduled one, or `mprism backfill`) is running. */
export class BackfillBusyError extends MprismError {
  override readonly code = 'lock_held';
}

/**
 * Holds PostgreSQL's session advisory lock of backfills for the life of `work`: the brain and the
 * CLI share the items' cursors, so two runs at once would fetch the same pages. A crashed holder's
 * session ends and its lock with it: never stale.
 */
export async function withBackfillLock<T>(pool: pg.Pool, work: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    const res = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [BACKFILL_LOCK_KEY]);
    if (res.rows[0]?.locked !== true) {
      throw new BackfillBusyError('another backfill is running (the brain\'s history initialization, a scheduled backfill or `mprism backfill`); it shares this progress: GET /api/v1/system/init/status');
    }
    try {
      return await work();
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [BACKFILL_LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}

// --- the brain's action, status and route ----------------------------------------------------------

/**
 * The `backfill` action: params `{ since?: "7d", types?: DataType[], venue?: Venue, trades?: boolean }`
 * over config.brain.init (a bad one fails the run, naming it). With no params it is the history
 * initialization. `simulate`: the platform runs against the simulator (the brain's ctx.simulate).
 */
export function createBackfillAction(deps: BrainDeps, simulate = process.env.MPRISM_SIMULATE === '1'): ActionRunner {
  const records = backfillCounter(deps.metrics, 'mprism_brain_backfill_records_total', 'History records published by backfills and the initialization');
  const left = backfillCounter(deps.metrics, 'mprism_brain_backfill_items_left_total', 'Backfill items left to the scheduled backfill after maxTries');
  return async (ctx) => {
    const scope = scopeFromParams(ctx.params, ctx.config);
    const report = await withBackfillLock(deps.pool, () =>
      runBackfill({
        config: ctx.config,
        scope,
        progress: ctx.progress,
        signal: ctx.signal,
        simulate,
        log: ctx.log,
        onEvent: (e) => {
          if (e.kind === 'item') {
            records.inc({ venue: e.item.venue, data_type: e.item.dataType }, e.item.records);
            if (e.item.status === 'left') left.inc({ venue: e.item.venue, data_type: e.item.dataType });
          }
        },
      }),
    ).catch((err: unknown) => {
      // The initialization and the scheduled backfill may meet: the one running covers the same
      // items from the same cursors, so the other one is no failure (no false job_failing alert).
      if (!(err instanceof BackfillBusyError)) throw err;
      ctx.log.info(BACKFILL_BUSY_NOTE);
      return emptyReport(runRange(Date.now(), scope.sinceMs), BACKFILL_BUSY_NOTE);
    });
    const problems = report.left.map((i) => `${i.key}: left to the scheduled backfill after ${i.tries} tries: ${i.error ?? 'unknown error'}`);
    if (report.aborted) problems.push('stopped before the end; the next run continues from the saved cursors');
    if (report.cold.error !== null) problems.push(`history not copied to cold: ${report.cold.error}`);
    for (const t of report.cold.tables) if (!t.verified) problems.push(`${t.table}: cold does not match hot over ${t.from} .. ${t.to} after the copy`);
    return { result: report, problems };
  };
}

/** One counter per registry: a second factory call (tests, a restarted daemon) reuses it. */
function backfillCounter(registry: Registry, name: string, help: string): Counter<'venue' | 'data_type'> {
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) return existing as Counter<'venue' | 'data_type'>;
  return new Counter({ name, help, labelNames: ['venue', 'data_type'], registers: [registry] });
}

/** True when the initialization is enabled and no run over its whole scope has finished yet. */
export async function historyInitPending(progress: ProgressStore, config: Config): Promise<boolean> {
  if (!config.brain.init.enabled) return false;
  const marker = await progress.load(INIT_RUN_KEY);
  return !(typeof marker === 'object' && marker !== null && typeof (marker as { finishedAt?: unknown }).finishedAt === 'string');
}

/** Between attempts of an initialization that did not complete: 30 s doubling to 10 min. */
export const INIT_RETRY: BackoffPolicy = { initialMs: 30_000, maxMs: 10 * 60_000, jitter: 0.1 };

export interface HistoryInitDriver {
  /** Whether the initialization still has to complete (historyInitPending). */
  pending(): Promise<boolean>;
  /** Starts one initialization run and waits for its end: the run's result, or why it did not start. */
  attempt(): Promise<JobResult | TriggerResult['kind']>;
  /** Still the leadership term the initialization started under. */
  leading(): boolean;
  /** The brain stops. */
  signal: AbortSignal;
  log: Logger;
  retry?: BackoffPolicy;
  /** How often a wait between attempts looks at leading(). */
  pollMs?: number;
}

/** Why keepInitializingHistory returned. */
export type HistoryInitEnd = 'complete' | 'not-leading' | 'stopped';

/**
 * The leader's history initialization: runs it, and while it stays pending (the run failed outright,
 * e.g. NATS not ready at first start, or found another backfill holding the lock) runs it again
 * with backoff, until it completes, this brain stops leading or the brain stops.
 */
export async function keepInitializingHistory(d: HistoryInitDriver): Promise<HistoryInitEnd> {
  const policy = d.retry ?? INIT_RETRY;
  const pollMs = d.pollMs ?? 1000;
  const pending = () =>
    d.pending().catch((err: unknown) => {
      d.log.warn({ err: errorMessage(err) }, 'cannot read whether the history initialization is pending; assuming it is');
      return true;
    });
  for (let attempt = 0; ; attempt++) {
    if (d.signal.aborted) return 'stopped';
    if (!d.leading()) return 'not-leading';
    if (!(await pending())) return 'complete';
    if (attempt === 0) d.log.info('history initialization pending: starting it in the background');
    const result = await d.attempt().catch((err: unknown) => {
      d.log.warn({ err: errorMessage(err) }, 'history initialization could not be started');
      return 'failed' as const;
    });
    // Another brain leads, or this one is stopping: the initialization is no longer ours to do.
    if (result === 'not-leader' || result === 'refused') return 'not-leading';
    if (d.signal.aborted) return 'stopped';
    if (!d.leading()) return 'not-leading';
    if (!(await pending())) return 'complete';
    const delayMs = backoffDelay(attempt, policy);
    d.log.warn({ result, retryInSeconds: Math.round(delayMs / 1000) }, 'history initialization did not complete; trying again');
    for (const until = Date.now() + delayMs; Date.now() < until && !d.signal.aborted && d.leading(); ) {
      await sleep(Math.min(pollMs, until - Date.now()), d.signal);
    }
  }
}

export interface InitItemError {
  item: string;
  error: string;
  at: string | null;
  tries: number;
  left: boolean;
}

/** GET /api/v1/system/init/status (stable shape). */
export interface InitStatus {
  enabled: boolean;
  pending: boolean;
  finishedAt: string | null;
  stages: {
    stage: InitStage;
    state: StageState;
    items: { done: number; left: number; skipped: number; total: number };
    records: number;
    errors: InitItemError[];
    lastError: InitItemError | null;
    updatedAt: string | null;
  }[];
}

export async function initStatus(progress: ProgressStore, config: Config): Promise<InitStatus> {
  const saved = new Map((await progress.list(ITEM_KEY_PREFIX)).map((row) => [row.key, row]));
  const marker = (await progress.load(INIT_RUN_KEY)) as { finishedAt?: unknown } | null;
  const finishedAt = typeof marker?.finishedAt === 'string' ? marker.finishedAt : null;
  const stages = planStages(config, initScope(config)).map((stage) => {
    const states = stage.items.map((item) => {
      const row = saved.get(item.key);
      return { item, state: row === undefined ? null : readItemState(row.state), updatedAt: row?.updatedAt ?? null };
    });
    const statuses = states.map((s) => itemStatus(s.state));
    const count = (st: ItemStatus) => statuses.filter((s) => s === st).length;
    const errors = states
      .filter((s) => s.state?.lastError !== null && s.state?.lastError !== undefined)
      .map((s) => {
        const st = s.state ?? EMPTY_ITEM;
        return { item: s.item.key, error: st.lastError ?? '', at: st.lastErrorAt, tries: st.tries, left: st.left };
      });
    const updated = states.map((s) => s.updatedAt).filter((t): t is string => t !== null).sort();
    return {
      stage: stage.stage,
      state: stageState(statuses),
      items: { done: count('done'), left: count('left'), skipped: count('skipped'), total: statuses.length },
      records: states.reduce((n, s) => n + (s.state?.records ?? 0), 0),
      errors,
      lastError: [...errors].sort((a, b) => (a.at ?? '').localeCompare(b.at ?? '')).at(-1) ?? null,
      updatedAt: updated.at(-1) ?? null,
    };
  });
  return { enabled: config.brain.init.enabled, pending: await historyInitPending(progress, config), finishedAt, stages };
}

export function initRoutes(progress: ProgressStore, config: Config): Route[] {
  return [{ method: 'GET', path: '/api/v1/system/init/status', handle: async () => json(200, await initStatus(progress, config)) }];
}

