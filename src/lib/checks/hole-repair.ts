import { Registry } from 'prom-client';
import { backoffDelay, sleep } from '../backoff.js';
import { connectNats } from '../bus/connection.js';
import { Publisher } from '../bus/publisher.js';
import { POLLED_DATA_TYPES, type Config, type Venue } from '../config/schema.js';
import { groupBy } from '../group-by.js';
import { errorMessage } from '../errors.js';
import { CONTRACT_SIZED, recordInCoins } from '../exchanges/contracts.js';
import { HistoryPagingError, pageHistory } from '../exchanges/history-paging.js';
import { adapterFor, pollOptions, venueBaseUrls } from '../exchanges/registry.js';
import { periodToMs, type HistoryDataType, type HistoryQuery, type HistorySource, type PollOptions, type RestRequest, type VenueAdapter, type VenueCredentials } from '../exchanges/types.js';
import { holeIdOf } from '../feeds/coverage.js';
import { BOOKS_UNREPAIRABLE } from '../feeds/venue-coverage.js';
import { DVOL_RESOLUTION_MS } from '../exchanges/deribit_derivatives.js';
import { RestClient, RestError, RestNetworkError } from '../feeds/rest-client.js';
import type { MarketRecord, StreamHoleRecord } from '../records.js';
import { createClickHouse, ensureReachable, type ClickHouseClient } from '../store/client.js';
import { holeStateRecord, listHoles, recordHoleStates, tradeIdsAround, type Hole } from '../store/holes.js';
import { missingRecords } from '../store/writer.js';
import { findUnrecordedGaps, holeExpiredInHot, holeReport } from './continuity.js';
import { replicationGraceMs } from './integrity.js';
import { retentionHorizons } from './retention.js';
import { describeHole, type HoleReport } from './hole-report.js';

/*
 * `mprism repair --json` lists, under "holes", what it did about each hole:
 *   { "hole": HoleReport (as before), "outcome": "repaired" | "unrepairable" | "open" | "would_refill",
 *     "records": 266, "detail": "refilled 266 trades from GET /api/v3/historicalTrades, verified in hot" }
 * "open": tried and not finished (venue unreachable, rows not in hot in time): the next run tries again.
 */

export type HoleOutcome = 'repaired' | 'unrepairable' | 'open' | 'would_refill';

export interface HoleRepairAction {
  hole: HoleReport;
  outcome: HoleOutcome;
  /** Records the venue's history held for the hole (published through JetStream). */
  records: number;
  detail: string;
}

/** Unrepairable because of missing credentials: a later run with them configured tries again. */
const BLOCKED_PREFIX = 'blocked: ';

/**
 * Data types whose history holds every observation the live stream had (same records, same
 * Msg-Ids). The others' history is coarser (open interest in 5 min bars, settled funding rates):
 * it is refilled, but what the live polls saw between its points is gone, so the hole stays
 * unrepairable with that said.
 */
const COMPLETE_HISTORY: ReadonlySet<HistoryDataType> = new Set(['trade', 'lsr_top_position', 'lsr_all_account', 'volatility_index']);

/** The collector keeps most of each venue's budget; repair (and history initialization) takes this share of it. */
export const REPAIR_BUDGET_SHARE = 0.2;
const REQUEST_ATTEMPTS = 6;
/** Refilled records published before they are looked for in hot together (pages of 100 to 1,000). */
const VERIFY_BATCH_RECORDS = 5000;

export interface HoleRepairOptions {
  dryRun: boolean;
  /** Look this far back for id gaps no hole records yet. */
  sinceMs: number;
  /** Whether the platform runs against the local simulator (history is read from it then). */
  simulate: boolean;
  /** How long refilled rows may take to reach hot through JetStream and storage. */
  verifyTimeoutMs?: number;
  progress?: (line: string) => void;
  now?: () => number;
  /** Stops the run between pages (the brain lost its lease, or stops): a hole not finished stays open. */
  signal?: AbortSignal;
}

function isHistoryType(t: string): t is HistoryDataType {
  return t === 'trade' || (POLLED_DATA_TYPES as readonly string[]).includes(t);
}

/** Retries what a venue may answer differently a moment later (rate limits, 5xx, network); the client keeps Retry-After. */
async function getWithRetry(rest: RestClient, req: RestRequest, signal: AbortSignal, attempts: number): Promise<{ body: string; receiveTime: number }> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await rest.get(req, signal);
    } catch (err) {
      const transient = err instanceof RestNetworkError || (err instanceof RestError && (err.retryAfterMs !== null || err.status >= 500));
      if (!transient || attempt + 1 >= attempts) throw err;
      await sleep(backoffDelay(attempt, { initialMs: 500, maxMs: 10_000, jitter: 0.3 }), signal);
    }
  }
}

/**
 * Per venue: its adapter, REST client within the repair's share of the budget, and contract values.
 * `requestAttempts`: tries per request for what may pass (429, 5xx, network); history
 * initialization asks 1 and retries whole items with its own backoff and bound.
 */
export class VenueHistory {
  readonly adapter: VenueAdapter;
  readonly rest: RestClient;
  readonly baseUrl: string;
  readonly credentials: VenueCredentials;
  private readonly coinsPerContract = new Map<string, string>();

  constructor(
    config: Config,
    readonly venue: Venue,
    simulate: boolean,
    private readonly signal: AbortSignal,
    private readonly requestAttempts = REQUEST_ATTEMPTS,
  ) {
    const v = config.collector.venues[venue];
    this.adapter = adapterFor(venue, v.symbols);
    this.rest = new RestClient({ venue, policy: this.adapter.rateLimit, budgetShare: REPAIR_BUDGET_SHARE });
    this.baseUrl = venueBaseUrls(config, venue, simulate).rest;
    this.credentials = { apiKey: v.apiKey };
  }

  get(req: RestRequest): Promise<{ body: string; receiveTime: number }> {
    return getWithRetry(this.rest, req, this.signal, this.requestAttempts);
  }

  /** Records in coins, as the collector publishes them. */
  async inCoins(records: MarketRecord[]): Promise<MarketRecord[]> {
    const contracts = this.adapter.contracts;
    if (contracts === undefined) return records;
    const out: MarketRecord[] = [];
    for (const r of records) {
      if (!CONTRACT_SIZED.has(r.dataType)) {
        out.push(r);
        continue;
      }
      let value = this.coinsPerContract.get(r.instrument);
      if (value === undefined) {
        const res = await this.get(contracts.request(this.baseUrl, r.instrument));
        value = contracts.reader(res.body)(r.instrument);
        this.coinsPerContract.set(r.instrument, value);
      }
      out.push(recordInCoins(r, value));
    }
    return out;
  }
}

interface Plan {
  hole: Hole;
  source: HistorySource | null;
  /** Why it cannot be refilled; null: it can. */
  unrepairable: string | null;
}

/** What can be done about one hole, before any request. */
function plan(hole: Hole, venue: VenueHistory, options: PollOptions, now: number, config: Config): Plan {
  if (hole.dataType === 'orderbook') return { hole, source: null, unrepairable: BOOKS_UNREPAIRABLE };
  // Refilled rows go to hot, which no longer keeps that time, and replication has long passed it.
  if (holeExpiredInHot(hole, retentionHorizons(now, config.retention).hot)) {
    return { hole, source: null, unrepairable: `ended before hot's retention horizon (retention.hotDays ${config.retention.hotDays})` };
  }
  const source = isHistoryType(hole.dataType) ? (venue.adapter.history[hole.dataType] ?? null) : null;
  if (source === null) return { hole, source, unrepairable: `${hole.venue} has no public REST history of ${hole.dataType}` };
  const blocked = source.blockedReason(venue.credentials);
  if (blocked !== null) return { hole, source, unrepairable: `${BLOCKED_PREFIX}${blocked}` };
  const horizon = source.horizonMs?.(options);
  if (horizon !== undefined && hole.fromTime < now - horizon) {
    return { hole, source, unrepairable: `older than ${source.endpoint} keeps (${Math.round(horizon / 3_600_000)} h)` };
  }
  return { hole, source, unrepairable: null };
}

/** The step of types sampled on a grid (long/short periods, DVOL candles), whose every point history must hold. */
function gridStepMs(dataType: HistoryDataType, options: PollOptions): number | null {
  if (dataType === 'lsr_top_position' || dataType === 'lsr_all_account') return periodToMs(options.lsrPeriod) || null;
  return dataType === 'volatility_index' ? DVOL_RESOLUTION_MS : null;
}

/** Grid points strictly inside the hole that no refilled record has: what the venue's history lacks. */
function missingGridPoints(hole: Hole, refilledTimes: ReadonlySet<number>, stepMs: number): number[] {
  const out: number[] = [];
  for (let t = (Math.floor(hole.fromTime / stepMs) + 1) * stepMs; t < hole.toTime; t += stepMs) if (!refilledTimes.has(t)) out.push(t);
  return out;
}

/** Fills in the ids of a trade hole recorded by time alone, from the trades stored around it. */
async function queryFor(hole: Hole, hot: ClickHouseClient, database: string): Promise<HistoryQuery> {
  const q: HistoryQuery = { instrument: hole.instrument, fromMs: hole.fromTime, toMs: hole.toTime, fromId: hole.firstMissingId, toId: hole.lastMissingId };
  if (hole.dataType !== 'trade' || (q.fromId !== null && q.toId !== null)) return q;
  const around = await tradeIdsAround(hot, database, { venue: hole.venue, instrument: hole.instrument }, hole.fromTime, hole.toTime);
  return {
    ...q,
    fromId: q.fromId ?? (around.before === null ? null : String(BigInt(around.before) + 1n)),
    toId: q.toId ?? (around.after === null ? null : String(BigInt(around.after) - 1n)),
  };
}

/** Ids of `query` the refilled trades do not cover, where the venue's ids are contiguous (pageHistory yields each once). */
function uncoveredIds(query: HistoryQuery, refilledTrades: number): bigint {
  if (query.fromId === null || query.toId === null) return 0n;
  return BigInt(query.toId) - BigInt(query.fromId) + 1n - BigInt(refilledTrades);
}

/**
 * Refills holes from the venues' REST history: records each id gap in hot that no hole records
 * yet, then for every open hole pages through the venue's history (within a share of its rate
 * budget; venues side by side, a venue's holes one after another), publishes what it holds
 * through JetStream (same Msg-Ids as live, so nothing is stored twice), waits until every
 * refilled row is in hot, and only then records the hole repaired. Idempotent: a hole whose
 * refill did not finish stays open for the next run.
 */
export async function repairHoles(config: Config, opts: HoleRepairOptions): Promise<HoleRepairAction[]> {
  const now = opts.now ?? Date.now;
  const progress = opts.progress ?? (() => {});
  const database = config.clickhouse.hot.database;
  const hot = createClickHouse(config.clickhouse.hot);
  const abort = new AbortController();
  const stop = () => abort.abort();
  opts.signal?.addEventListener('abort', stop, { once: true });
  // Connected on the first page to publish: a run with nothing to refill needs no NATS.
  const publisher: { ready: Promise<Publisher> | null } = { ready: null };
  const nats: { close: (() => Promise<void>) | null } = { close: null };
  try {
    await ensureReachable(hot, 'clickhouse-hot', config.clickhouse.hot);
    // As integrity scans: the newest trades may still be on their way to hot out of order, and hot
    // keeps only retention.hotDays (older partitions may be gone, which is no id gap).
    const scanStart = Math.max(now() - opts.sinceMs, retentionHorizons(now(), config.retention).hot);
    const found = await recordUnrecordedGaps(config, hot, { start: scanStart, end: now() - replicationGraceMs(config) }, opts.dryRun);
    if (found > 0) progress(`recorded ${found} hole${found === 1 ? '' : 's'} found in hot by trade id`);

    const options = pollOptions(config);
    const connectPublisher = async (): Promise<Publisher> => {
      const nc = await connectNats(config, 'repair');
      nats.close = () => nc.drain();
      return new Publisher(nc, { metrics: new Registry(), component: 'repair', signal: abort.signal });
    };
    // One connection for every venue; a failed connect is tried again by the next hole.
    const publisherFor = (): Promise<Publisher> =>
      (publisher.ready ??= connectPublisher().catch((err: unknown) => {
        publisher.ready = null;
        throw err;
      }));
    const venues = new Map<Venue, VenueHistory>();
    const venueOf = (v: Venue) => {
      let h = venues.get(v);
      if (h === undefined) venues.set(v, (h = new VenueHistory(config, v, opts.simulate, abort.signal)));
      return h;
    };
    const holes = (await listHoles(hot, database, { changedSince: now() })).filter((h) => {
      if (h.state === 'open') return true;
      // Unrepairable for want of an API key: worth another try once one is configured.
      if (h.state !== 'unrepairable' || !h.detail.startsWith(BLOCKED_PREFIX) || !config.collector.venues[h.venue]) return false;
      return plan(h, venueOf(h.venue), options, now(), config).unrepairable === null;
    });
    // By hole: venues are repaired side by side, and reported in the order the holes were listed.
    const reported = new Map<Hole, HoleRepairAction>();
    const report = (hole: Hole, action: Omit<HoleRepairAction, 'hole'>) => reported.set(hole, { hole: holeReport(hole), ...action });
    const states: StreamHoleRecord[] = [];
    const settle = (hole: Hole, outcome: HoleOutcome, records: number, detail: string) => {
      report(hole, { outcome, records, detail });
      progress(`${describeHole(holeReport(hole))}: ${outcome} (${detail})`);
      if (outcome === 'repaired' || outcome === 'unrepairable') states.push(holeStateRecord(hole, outcome, detail, now()));
    };

    const repairOne = async (hole: Hole): Promise<void> => {
      if (config.collector.venues[hole.venue] === undefined) return;
      const venue = venueOf(hole.venue);
      const p = plan(hole, venue, options, now(), config);
      if (p.unrepairable !== null || p.source === null) {
        if (!opts.dryRun && hole.state === 'open') settle(hole, 'unrepairable', 0, p.unrepairable ?? 'no history');
        else if (opts.dryRun) report(hole, { outcome: 'unrepairable', records: 0, detail: p.unrepairable ?? 'no history' });
        return;
      }
      const query = await queryFor(hole, hot, database);
      if (opts.dryRun) {
        report(hole, { outcome: 'would_refill', records: 0, detail: `from ${p.source.endpoint}` });
        return;
      }
      if (p.source.pagesBy === 'id' && query.fromId === null) {
        settle(hole, 'unrepairable', 0, `${p.source.endpoint} pages by trade id, and no trade id before the hole is known`);
        return;
      }
      // Page by page: published, then waited for in hot every VERIFY_BATCH_RECORDS, so a day-long
      // hole never sits in memory whole.
      const refilled = { count: 0, tradeIds: 0, times: new Set<number>() };
      let missing = 0;
      const unverified: MarketRecord[] = [];
      try {
        for await (const venuePage of pageHistory(p.source, venue.baseUrl, query, venue.credentials, options, (req) => venue.get(req))) {
          const page = await venue.inCoins(venuePage);
          await publishPage(await publisherFor(), page);
          unverified.push(...page);
          // Looked for in hot every VERIFY_BATCH_RECORDS rather than every page: one query per batch.
          if (unverified.length >= VERIFY_BATCH_RECORDS) missing += await waitInHot(hot, database, unverified.splice(0), opts.verifyTimeoutMs ?? 60_000);
          refilled.count += page.length;
          for (const r of page) {
            if (r.dataType === 'trade') refilled.tradeIds++;
            else refilled.times.add(r.eventTime);
          }
          progress(`${describeHole(holeReport(hole))}: ${refilled.count} records refilled`);
          // Rows that do not reach hot mean storage is not writing: the rest waits for the next run.
          if (missing > 0) break;
        }
        if (missing === 0 && unverified.length > 0) missing += await waitInHot(hot, database, unverified, opts.verifyTimeoutMs ?? 60_000);
      } catch (err) {
        if (err instanceof HistoryPagingError && err.reason === 'blocked') settle(hole, 'unrepairable', 0, `${BLOCKED_PREFIX}${err.message}`);
        else report(hole, { outcome: 'open', records: refilled.count, detail: `history not read: ${errorMessage(err)}` });
        return;
      }
      const what = `${refilled.count} ${hole.dataType} record${refilled.count === 1 ? '' : 's'} from ${p.source.endpoint}`;
      if (missing > 0) {
        report(hole, { outcome: 'open', records: refilled.count, detail: `refilled ${what}, ${missing} not in hot yet (is storage running?)` });
        return;
      }
      const uncovered = hole.dataType === 'trade' && venue.adapter.tradeIds === 'contiguous' ? uncoveredIds(query, refilled.tradeIds) : 0n;
      const step = gridStepMs(hole.dataType as HistoryDataType, options);
      const lacking = step === null ? [] : missingGridPoints(hole, refilled.times, step);
      if (uncovered > 0n) settle(hole, 'unrepairable', refilled.count, `refilled ${what}; the venue's history has no trade for ${uncovered} of the missing ids`);
      else if (lacking.length > 0) settle(hole, 'unrepairable', refilled.count, `refilled ${what}; the venue's history has no observation at ${lacking.length} of the points in the hole (first ${new Date(lacking[0] as number).toISOString()})`);
      else if (!COMPLETE_HISTORY.has(hole.dataType as HistoryDataType))
        settle(hole, 'unrepairable', refilled.count, `refilled ${what}; the venue's history is coarser than the live polls, whose observations in the hole are lost`);
      else settle(hole, 'repaired', refilled.count, `refilled ${what}, verified in hot`);
    };
    // Venues side by side, each within its own share of its rate budget; a venue's holes one after another.
    const venueRuns = await Promise.allSettled(
      [...groupBy(holes, (h) => h.venue).values()].map(async (venueHoles) => {
        try {
          for (const hole of venueHoles) {
            if (abort.signal.aborted) return;
            await repairOne(hole);
          }
        } catch (err) {
          // ClickHouse unreachable, say: the other venues stop at their next request too.
          abort.abort();
          throw err;
        }
      }),
    );
    // Every venue finished before anything is closed, and what was settled is recorded even when a
    // venue failed: that failure is then the run's.
    if (!opts.dryRun) await recordHoleStates(hot, database, states);
    for (const run of venueRuns) if (run.status === 'rejected') throw run.reason;
    return holes.flatMap((h) => reported.get(h) ?? []);
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    abort.abort();
    await publisher.ready?.then((p) => p.flush()).catch(() => {});
    await nats.close?.().catch(() => {});
    await hot.close();
  }
}

/**
 * Publishes records through JetStream (their Msg-Ids, so a record stored before is not stored
 * again) and waits for the acks; returns how many JetStream confirmed (fewer only when the
 * publisher gave up at shutdown).
 */
export async function publishPage(publisher: Publisher, records: readonly MarketRecord[]): Promise<number> {
  let stored = 0;
  for (const r of records) await publisher.publish(r, () => stored++);
  await publisher.flush();
  return stored;
}

/** Waits until every record is in hot; returns how many are still missing at the timeout. */
async function waitInHot(hot: ClickHouseClient, database: string, records: readonly MarketRecord[], timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let missing = [...records];
  for (let attempt = 0; missing.length > 0; attempt++) {
    missing = await missingRecords(hot, database, missing);
    if (missing.length === 0 || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(2000, 200 * (attempt + 1))));
  }
  return missing.length;
}

/** Records, as holes, id gaps in hot that no hole explains (venues with contiguous trade ids). */
async function recordUnrecordedGaps(config: Config, hot: ClickHouseClient, range: { start: number; end: number }, dryRun: boolean): Promise<number> {
  const database = config.clickhouse.hot.database;
  const holes = await listHoles(hot, database, { changedSince: range.start });
  const gaps = await findUnrecordedGaps(config, hot, holes, range);
  const at = Date.now();
  const records: StreamHoleRecord[] = gaps.map(({ span, gap }) => {
    const stream = { venue: span.venue as Venue, dataType: 'trade' as const, instrument: span.instrument };
    return {
      dataType: 'stream_hole',
      venue: stream.venue,
      marketType: span.marketType as StreamHoleRecord['marketType'],
      symbol: span.symbol,
      instrument: span.instrument,
      eventTime: at,
      receiveTime: at,
      holeDataType: 'trade',
      holeId: holeIdOf(stream, gap),
      fromTime: gap.fromTime,
      toTime: gap.toTime,
      firstMissingId: gap.firstMissingId,
      lastMissingId: gap.lastMissingId,
      missingCount: gap.missing,
      cause: 'id_gap',
      state: 'open',
      detail: 'trade ids missing in hot, found by repair',
    };
  });
  if (!dryRun) await recordHoleStates(hot, database, records);
  return records.length;
}
