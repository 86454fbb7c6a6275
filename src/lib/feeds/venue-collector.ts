import { boundedSignal } from '../abort.js';
import { backoffDelay, sleep, type BackoffPolicy } from '../backoff.js';
import type { DataType, PolledDataType } from '../config/schema.js';
import { ConfigError, errorMessage } from '../errors.js';
import { CONTRACT_SIZED, recordInCoins } from '../exchanges/contracts.js';
import { MalformedFrameError, type BookSupport, type PollOptions, type VenueAdapter } from '../exchanges/types.js';
import type { Logger } from '../log.js';
import { BookSync, type BookSyncOutput, type BookSyncState } from '../orderbook/sync.js';
import type { BookMessage } from '../orderbook/types.js';
import { COLLECTOR_STOPPED_DETAIL, type MarketRecord, type StreamHoleRecord } from '../records.js';
import type { CollectorMetrics } from './collector-metrics.js';
import { combinedFreshness, freshness, staleThresholdMs, type Freshness } from './freshness.js';
import { RawCaptureWriter } from './raw-capture.js';
import { RecordQueue, type RecordSink } from './record-queue.js';
import { VenueCoverage } from './venue-coverage.js';
import type { PersistedStream } from './coverage.js';
import { RestClient, type RestResponse } from './rest-client.js';
import { RestPoller, pollErrorCode, type PollOutcome } from './rest-poller.js';
import { SnapshotQueue } from './snapshot-queue.js';
import { WsFeed, type FeedDisconnect, type FeedState } from './ws-feed.js';

export interface VenueCollectorOptions {
  adapter: VenueAdapter;
  /** scheme://host[:port][/prefix]; the adapter appends its routes. */
  wsBaseUrl: string;
  restBaseUrl: string;
  symbols: readonly string[];
  dataTypes: readonly DataType[];
  sink: RecordSink;
  metrics: CollectorMetrics;
  log: Logger;
  /** Silence threshold of connections whose spec does not set one. */
  staleAfterMs: number;
  reconnect: BackoffPolicy;
  /** Before its first record a stream is `starting`, not `stale`, for this long. */
  startupGraceMs: number;
  orderbook: { depth: number; maxSnapshotsPerSecond: number };
  polls: PollOptions;
  /** Raw capture of every frame and REST body; null: off. */
  capture: { dir: string; maxFileBytes: number } | null;
  /** Snapshot requests started per second for this venue, at most. */
  snapshotRequestsPerSecond?: number;
  /** This venue's streams as the previous run left them (coverage file); a start closes their holes. */
  resume?: readonly PersistedStream[];
  /** Injected in tests; otherwise built from the adapter's rate limit. */
  rest?: RestClient;
  now?: () => number;
}

export interface StreamHealth {
  venue: string;
  dataType: DataType;
  source: 'ws' | 'rest';
  /** Combined from `instruments` (combinedFreshness): one stale instrument makes it stale. */
  status: Freshness;
  /** Newest success over all instruments. */
  lastSuccessAt: string | null;
  ageSeconds: number | null;
  /** Polled types: the first of the instruments' lastError. */
  lastError: string | null;
  /** Each configured instrument, so a dead symbol shows up beside a live one. */
  instruments: InstrumentHealth[];
}

export interface InstrumentHealth {
  instrument: string;
  status: Freshness;
  lastSuccessAt: string | null;
  ageSeconds: number | null;
  /** Polled types: code of this instrument's last failed request since its last success. */
  lastError: string | null;
}

export interface ConnectionHealth {
  venue: string;
  id: string;
  dataTypes: readonly DataType[];
  state: FeedState;
  connects: number;
  reconnects: number;
  handovers: number;
  lastDisconnectReason: string | null;
}

export interface BookHealth {
  venue: string;
  instrument: string;
  symbol: string;
  state: BookSyncState;
  resyncs: number;
  gaps: number;
  lastUpdateId: number | null;
  bidLevels: number;
  askLevels: number;
  connection: string | null;
}

export interface VenueHealth {
  streams: StreamHealth[];
  connections: ConnectionHealth[];
  books: BookHealth[];
}

interface BookEntry {
  instrument: string;
  symbol: string;
  sync: BookSync;
  /** The feed that last delivered this book: resubscribes go there, its loss resets the book. */
  feed: WsFeed | null;
  /** BookSync's resync count already turned into metrics. */
  countedResyncs: number;
  snapshotFailures: number;
  /** source `stream`: when a fresh snapshot was asked for that has not come yet. */
  resubscribedAt: number | null;
  /** source `stream`: when the last resubscribe was sent, answered or not. */
  lastResubscribeAt: number | null;
  /** source `stream`: resubscribes sent in a row, none of them more than RESUBSCRIBE_BACKOFF.maxMs apart. */
  resubscribesInARow: number;
  /** source `stream`: a resubscribe held back by the pacing, sent by tickBooks from then on. */
  resubscribeDueAt: number | null;
  /** Receive times of the book's newest message and the one before it. */
  lastMessageAt: number | null;
  previousMessageAt: number | null;
}

const MALFORMED_LOG_INTERVAL_MS = 10_000;
/** An open connection this long resets the reconnect backoff. */
const STABLE_CONNECTION_MS = 60_000;
/** Throttled book changes are published at most this late. */
const BOOK_TICK_MS = 100;
const DEFAULT_SNAPSHOT_REQUESTS_PER_SECOND = 3;
const SNAPSHOT_RETRY: BackoffPolicy = { initialMs: 500, maxMs: 30_000, jitter: 0.3 };
/** Asking again for contract values the venue did not give: the feeds wait for them. */
const CONTRACT_VALUE_RETRY: BackoffPolicy = { initialMs: 1000, maxMs: 60_000, jitter: 0.3 };
/** A resubscribe that brought no snapshot in this long is sent again. */
const RESUBSCRIBE_TIMEOUT_MS = 10_000;
/**
 * Spacing of one book's resubscribes in a row. A venue whose fresh snapshots keep failing validation
 * would otherwise be resubscribed at round-trip speed, and OKX allows 480 (un)subscribe requests per
 * connection per hour. A book that went maxMs without one starts over at once.
 */
const RESUBSCRIBE_BACKOFF: BackoffPolicy = { initialMs: 10_000, maxMs: 15 * 60_000 };

/** How long after the previous resubscribe the next may go, given how many were sent in a row. */
export function resubscribeDelayMs(sentInARow: number): number {
  return sentInARow === 0 ? 0 : backoffDelay(sentInARow - 1, RESUBSCRIBE_BACKOFF);
}

/** The inner map of `outer` at `key`, created on first use. */
function innerMap<K, IK, V>(outer: Map<K, Map<IK, V>>, key: K): Map<IK, V> {
  let inner = outer.get(key);
  if (inner === undefined) outer.set(key, (inner = new Map()));
  return inner;
}

/** The requested data types the adapter collects over WebSocket and by polling; any other is a config error. */
export function splitDataTypes(adapter: VenueAdapter, dataTypes: readonly DataType[]): { ws: DataType[]; polled: PolledDataType[] } {
  const ws: DataType[] = [];
  const polled: PolledDataType[] = [];
  for (const t of dataTypes) {
    if (adapter.wsDataTypes.includes(t)) ws.push(t);
    else if ((adapter.polledDataTypes as readonly DataType[]).includes(t)) polled.push(t as PolledDataType);
    else throw new ConfigError(`collector.venues.${adapter.venue}.dataTypes: ${t} is not collected for ${adapter.venue}`);
  }
  return { ws, polled };
}

/**
 * One venue: its WebSocket connections, REST polls and orderbooks. Frames are normalized
 * synchronously in arrival order; book messages go through one BookSync per instrument; records
 * wait in a bounded queue for the sink (publishing is pipelined by the sink).
 */
export class VenueCollector {
  private readonly feeds: WsFeed[];
  private readonly rest: RestClient;
  private readonly poller: RestPoller | null;
  private readonly pollCount: number;
  private readonly snapshots: SnapshotQueue<RestResponse> | null;
  private readonly capture: RawCaptureWriter | null;
  private readonly books = new Map<string, BookEntry>();
  /** Receive time of the newest success per data type and instrument. */
  private readonly lastSuccess = new Map<DataType, Map<string, number>>();
  private readonly newestSuccess = new Map<DataType, number>();
  /** The instrument ids the configured symbols' records carry: what health expects to hear from. */
  private readonly instruments: readonly string[];
  /** Code of the last failed poll per data type and instrument, until that poll succeeds again. */
  private readonly lastPollError = new Map<DataType, Map<string, string>>();
  private readonly polledTypes: readonly PolledDataType[];
  private readonly wsTypes: readonly DataType[];
  /** Coins per contract of each configured instrument, where the venue counts sizes in contracts. */
  private readonly coinsPerContract = new Map<string, string>();
  /** Why an instrument's contract value is not known yet; health shows it on its WebSocket streams. */
  private readonly contractValueError = new Map<string, string>();
  private readonly queue: RecordQueue;
  private readonly coverage: VenueCoverage;
  /** Feeds that lost their connection and have not delivered a frame on a new one yet. */
  private readonly feedsDown = new Set<WsFeed>();
  private readonly startedAt: number;
  private readonly now: () => number;
  private malformedSinceLog = 0;
  private lastMalformedLogAt = -Infinity;

  constructor(private readonly opts: VenueCollectorOptions) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    const { adapter, metrics } = opts;
    const venue = adapter.venue;
    const { ws, polled } = splitDataTypes(adapter, opts.dataTypes);
    this.polledTypes = polled;
    this.wsTypes = ws;
    this.instruments = [...new Set(opts.symbols.map((s) => adapter.instrumentOf(s)))];
    this.capture = opts.capture === null ? null : new RawCaptureWriter({ ...opts.capture, venue, log: opts.log, now: this.now });
    this.coverage = new VenueCoverage({ venue, contiguousTradeIds: adapter.tradeIds === 'contiguous', polls: opts.polls, resume: opts.resume ?? [] });
    this.rest =
      opts.rest ??
      new RestClient({
        venue,
        policy: adapter.rateLimit,
        hooks: {
          request: (outcome) => metrics.restRequests.inc({ venue, outcome }),
          waited: (ms) => metrics.restWaitSeconds.inc({ venue }, ms / 1000),
          rateLimited: (status) => metrics.restRateLimited.inc({ venue, status: String(status) }),
        },
      });
    this.feeds =
      ws.length === 0
        ? []
        : adapter.connections(opts.wsBaseUrl, opts.symbols, ws).map((spec) => {
            const feed: WsFeed = new WsFeed({
              spec,
              staleAfterMs: opts.staleAfterMs,
              reconnect: opts.reconnect,
              stableAfterMs: STABLE_CONNECTION_MS,
              log: opts.log,
              now: this.now,
              onFrame: (frame, receiveTime) => this.handleFrame(feed, frame, receiveTime),
              onDisconnect: (d) => this.handleDisconnect(feed, d),
            });
            return feed;
          });
    const polls = polled.length === 0 ? [] : adapter.polls(opts.restBaseUrl, opts.symbols, polled, opts.polls);
    this.pollCount = polls.length;
    this.poller =
      polls.length === 0
        ? null
        : new RestPoller({
            client: this.rest,
            polls,
            log: opts.log,
            onRecords: (records) => {
              for (const r of records) this.acceptRecord(r, null);
            },
            // res.url, not poll.url: a poll may build its URL on every read (a window ending now).
            onResponse: (poll, res) => this.capture?.write({ t: res.receiveTime, kind: 'rest', conn: poll.id, url: res.url, data: res.body }),
            onOutcome: (o) => this.handlePollOutcome(o),
          });
    this.queue = new RecordQueue(opts.sink, { pause: () => this.feeds.forEach((f) => f.pause()), resume: () => this.feeds.forEach((f) => f.resume()) });
    const book = adapter.book;
    this.snapshots =
      book?.source === 'rest'
        ? new SnapshotQueue<RestResponse>({
            perSecond: opts.snapshotRequestsPerSecond ?? DEFAULT_SNAPSHOT_REQUESTS_PER_SECOND,
            now: this.now,
            fetch: (instrument, signal) => this.fetchSnapshot(book, instrument, signal),
            settle: (instrument, outcome) => this.settleSnapshot(book, instrument, outcome),
          })
        : null;
  }

  /** Runs connections, polls and book upkeep until the signal aborts, then hands every queued record to the sink. */
  async run(daemonSignal: AbortSignal): Promise<void> {
    // Every feed (run and backoff), poll loop and snapshot request waits on this signal at once;
    // with many symbols that is more than Node's default of 10 listeners, and not a leak.
    const bound = 2 * this.feeds.length + this.pollCount + this.opts.symbols.length + 8;
    const { signal, release } = boundedSignal(daemonSignal, bound);
    const ticker = setInterval(() => this.tickBooks(), BOOK_TICK_MS);
    try {
      const feeds = async () => {
        await this.loadContractValues(signal);
        await Promise.all(this.feeds.map((f) => f.run(signal)));
      };
      await Promise.all([feeds(), this.poller?.run(signal), this.snapshots?.run(signal)]);
    } finally {
      clearInterval(ticker);
      release();
    }
    this.markBooksStopped();
    await this.drain();
    await this.capture?.close();
  }

  /**
   * Venues that count sizes in contracts: asks for every configured instrument's contract value,
   * again with backoff until all are known, before the feeds open. A size that cannot be told in
   * coins is not published in contracts instead.
   */
  private async loadContractValues(signal: AbortSignal): Promise<void> {
    const contracts = this.opts.adapter.contracts;
    if (contracts === undefined || this.feeds.length === 0) return;
    const venue = this.opts.adapter.venue;
    for (let failures = 0; !signal.aborted; failures++) {
      for (const instrument of this.instruments) {
        if (this.coinsPerContract.has(instrument) || signal.aborted) continue;
        const req = contracts.request(this.opts.restBaseUrl, instrument);
        try {
          const res = await this.rest.get(req, signal);
          this.capture?.write({ t: res.receiveTime, kind: 'rest', conn: `${venue}/contracts/${instrument}`, url: res.url, data: res.body });
          this.coinsPerContract.set(instrument, contracts.parse(res.body, instrument));
          this.contractValueError.delete(instrument);
        } catch (err) {
          if (signal.aborted) return;
          const code = pollErrorCode(err);
          this.contractValueError.set(instrument, `contract value unknown, ${code}: ${errorMessage(err)}`);
          for (const dataType of this.wsTypes) this.opts.metrics.errors.inc({ venue, data_type: dataType, code });
          this.opts.log.warn({ instrument, code, err: errorMessage(err), failures: failures + 1 }, 'contract value unavailable; its feeds wait');
        }
      }
      if (this.coinsPerContract.size === this.instruments.length) return;
      await sleep(backoffDelay(failures, CONTRACT_VALUE_RETRY), signal);
    }
  }

  /** Resolves when every record received so far has been handed to the sink. */
  async drain(): Promise<void> {
    await this.queue.drain();
  }

  health(): VenueHealth {
    const now = this.now();
    const venue = this.opts.adapter.venue;
    const graceMs = this.opts.startupGraceMs;
    const at = (last: number | null) => ({
      lastSuccessAt: last === null ? null : new Date(last).toISOString(),
      ageSeconds: last === null ? null : Math.max(0, (now - last) / 1000),
    });
    const streams = this.opts.dataTypes.map((dataType): StreamHealth => {
      const polled = (this.polledTypes as readonly DataType[]).includes(dataType);
      const byInstrument = this.lastSuccess.get(dataType);
      const instruments = this.instruments.map((instrument): InstrumentHealth => {
        const last = byInstrument?.get(instrument) ?? null;
        const status = freshness({ now, startedAt: this.startedAt, lastSuccessAt: last, thresholdMs: staleThresholdMs(dataType), graceMs });
        const lastError = polled ? this.lastPollError.get(dataType)?.get(instrument) : this.contractValueError.get(instrument);
        return { instrument, status, ...at(last), lastError: lastError ?? null };
      });
      const newest = this.newestSuccess.get(dataType) ?? null;
      return {
        venue,
        dataType,
        source: polled ? 'rest' : 'ws',
        status: combinedFreshness(dataType, instruments.map((i) => i.status)),
        ...at(newest),
        lastError: instruments.find((i) => i.lastError !== null)?.lastError ?? null,
        instruments,
      };
    });
    const connections = this.feeds.map((f): ConnectionHealth => {
      const s = f.stats;
      return {
        venue,
        id: f.id,
        dataTypes: f.dataTypes,
        state: s.state,
        connects: s.connects,
        reconnects: s.reconnects,
        handovers: s.handovers,
        lastDisconnectReason: s.lastDisconnectReason,
      };
    });
    const books = [...this.books.values()].map((b): BookHealth => {
      const s = b.sync.stats;
      return {
        venue,
        instrument: b.instrument,
        symbol: b.symbol,
        state: b.sync.state,
        resyncs: s.resyncs,
        gaps: s.gaps,
        lastUpdateId: s.lastUpdateId,
        bidLevels: s.bidLevels,
        askLevels: s.askLevels,
        connection: b.feed?.id ?? null,
      };
    });
    return { streams, connections, books };
  }

  /** Returns true when the frame carried market data (a replacement connection proves itself with it). */
  private handleFrame(feed: WsFeed, frame: string, receiveTime: number): boolean {
    const { adapter } = this.opts;
    this.capture?.write({ t: receiveTime, kind: 'ws', conn: feed.id, url: feed.url, data: frame });
    if (this.feedsDown.delete(feed)) {
      for (const hole of this.coverage.onSourceResumed(feed, receiveTime, this.now())) this.recordHole(hole);
    }
    let produced = 0;
    try {
      adapter.normalize(frame, receiveTime, {
        record: (r) => {
          produced++;
          this.acceptRecord(r, feed);
        },
        book: (m) => {
          produced++;
          this.acceptBookMessage(feed, m, receiveTime);
        },
      });
    } catch (err) {
      this.countBadFrame(err, frame);
    }
    if (produced > 0) return true;
    const action = adapter.control(frame);
    if (action.kind === 'reconnect') {
      this.opts.log.warn({ feed: feed.id, reason: action.reason }, 'venue asked for a new connection');
      feed.recycle(action.reason);
    } else if (action.kind === 'send') {
      feed.send(action.message);
    }
    return false;
  }

  /** A record from a frame (`source`: its feed) or a poll (null), or a gap marker. */
  private acceptRecord(record: MarketRecord, source: WsFeed | null): void {
    this.opts.metrics.messages.inc({ venue: this.opts.adapter.venue, data_type: record.dataType });
    this.publishData(record, source);
  }

  /** Market data on its way out: freshness, continuity (a hole it closes is recorded first), then the queue. */
  private publishData(record: MarketRecord, source: WsFeed | null): void {
    if (record.dataType === 'orderbook_gap' || record.dataType === 'stream_hole') {
      this.publish(record);
      return;
    }
    this.markSuccess(record.dataType, record.instrument, record.receiveTime);
    const { hole, onStored } = this.coverage.onRecord(record, source, this.now());
    if (hole !== null) this.recordHole(hole);
    this.publish(record, onStored);
  }

  private recordHole(hole: StreamHoleRecord): void {
    this.opts.metrics.holes.inc({ venue: hole.venue, data_type: hole.holeDataType, cause: hole.cause });
    this.opts.log.warn(
      { instrument: hole.instrument, dataType: hole.holeDataType, cause: hole.cause, from: new Date(hole.fromTime).toISOString(), to: new Date(hole.toTime).toISOString(), firstMissingId: hole.firstMissingId, lastMissingId: hole.lastMissingId, missing: hole.missingCount, detail: hole.detail },
      'hole in stream recorded',
    );
    this.publish(hole);
  }

  /** What the coverage file keeps of this venue's streams now. */
  coverageState(): PersistedStream[] {
    return this.coverage.persisted(this.now());
  }

  private markSuccess(dataType: DataType, instrument: string, at: number): void {
    const byInstrument = innerMap(this.lastSuccess, dataType);
    if (byInstrument.get(instrument) === at) return;
    byInstrument.set(instrument, at);
    const venue = this.opts.adapter.venue;
    this.opts.metrics.instrumentLastSuccess.set({ venue, data_type: dataType, instrument }, at / 1000);
    if (at > (this.newestSuccess.get(dataType) ?? -Infinity)) {
      this.newestSuccess.set(dataType, at);
      this.opts.metrics.lastSuccess.set({ venue, data_type: dataType }, at / 1000);
    }
  }

  private acceptBookMessage(feed: WsFeed, m: BookMessage, now: number): void {
    this.opts.metrics.messages.inc({ venue: this.opts.adapter.venue, data_type: 'orderbook' });
    const entry = this.bookFor(m);
    entry.feed = feed;
    entry.previousMessageAt = entry.lastMessageAt;
    entry.lastMessageAt = now;
    if (m.action === 'snapshot') entry.resubscribedAt = null;
    this.act(entry, entry.sync.onMessage(m, now));
  }

  private bookFor(m: BookMessage): BookEntry {
    const existing = this.books.get(m.instrument);
    if (existing !== undefined) return existing;
    const support = this.opts.adapter.book;
    if (support === null) throw new MalformedFrameError('unexpected_shape', `${this.opts.adapter.venue} has no orderbooks but sent a book message`, 'orderbook');
    const { depth, maxSnapshotsPerSecond } = this.opts.orderbook;
    const entry: BookEntry = {
      instrument: m.instrument,
      symbol: m.symbol,
      sync: new BookSync({ rules: support.rules, source: support.source, checksum: support.checksum, depth, minPublishIntervalMs: 1000 / maxSnapshotsPerSecond }),
      feed: null,
      countedResyncs: 0,
      snapshotFailures: 0,
      resubscribedAt: null,
      lastResubscribeAt: null,
      resubscribesInARow: 0,
      resubscribeDueAt: null,
      lastMessageAt: null,
      previousMessageAt: null,
    };
    this.books.set(m.instrument, entry);
    return entry;
  }

  /** Carries out what BookSync asked for. */
  private act(entry: BookEntry, out: BookSyncOutput): void {
    const venue = this.opts.adapter.venue;
    const stats = entry.sync.stats;
    if (out.gap !== null) {
      this.opts.metrics.errors.inc({ venue, data_type: 'orderbook', code: out.gap.reason });
      this.opts.log.warn({ instrument: entry.instrument, reason: out.gap.reason, detail: out.gap.detail, lastUpdateId: out.gap.lastUpdateId }, 'orderbook lost sync');
      this.acceptRecord(out.gap, null);
      const cause = out.gap.reason === 'disconnect' ? 'disconnect' : 'book_resync';
      const detail = `${out.gap.reason}: ${out.gap.detail}`;
      this.coverage.onStreamBreak('orderbook', entry.instrument, { cause, at: this.now(), detail });
      // A skipped sequence id means the connection lost frames while it stayed open (a stall shorter
      // than the watchdog's threshold): what else it carried may be missing too. Books judge themselves.
      if (out.gap.reason === 'sequence_gap' && entry.feed !== null) {
        const feed = entry.feed;
        // The book's message before the one that showed the gap came before the loss began.
        const at = entry.previousMessageAt ?? this.now();
        for (const hole of this.coverage.onSourceLost(feed, 'frames_lost', at, `${entry.instrument} book on ${feed.id}: ${detail}`, this.now(), (t) => t !== 'orderbook')) this.recordHole(hole);
      }
    }
    if (stats.resyncs > entry.countedResyncs) {
      this.opts.metrics.resyncs.inc({ venue, symbol: entry.symbol, reason: out.reason ?? 'unknown' }, stats.resyncs - entry.countedResyncs);
      entry.countedResyncs = stats.resyncs;
    }
    if (out.publish !== null) {
      this.publishData(out.publish, entry.feed);
    }
    if (out.resync === 'rest_snapshot') {
      const notBefore = entry.snapshotFailures === 0 ? 0 : this.now() + backoffDelay(entry.snapshotFailures - 1, SNAPSHOT_RETRY);
      this.snapshots?.request(entry.instrument, notBefore);
    } else if (out.resync === 'resubscribe') {
      this.requestResubscribe(entry, this.now());
    }
  }

  /** Resubscribes at once, or schedules it when the book's previous resubscribes were too recent. */
  private requestResubscribe(entry: BookEntry, now: number): void {
    if (entry.resubscribeDueAt !== null) return;
    const last = entry.lastResubscribeAt;
    if (last === null || now - last >= RESUBSCRIBE_BACKOFF.maxMs) entry.resubscribesInARow = 0;
    const dueAt = last === null ? now : last + resubscribeDelayMs(entry.resubscribesInARow);
    if (dueAt <= now) this.resubscribe(entry, now);
    else entry.resubscribeDueAt = dueAt;
  }

  private resubscribe(entry: BookEntry, now: number): void {
    entry.resubscribeDueAt = null;
    entry.resubscribedAt = now;
    entry.lastResubscribeAt = now;
    entry.resubscribesInARow++;
    const frames = this.opts.adapter.book?.resubscribe?.(entry.instrument) ?? [];
    // Not open: the reconnect subscribes afresh, which brings a snapshot anyway.
    if (entry.feed === null) return;
    for (const frame of frames) entry.feed.send(frame);
  }

  private handleDisconnect(feed: WsFeed, d: FeedDisconnect): void {
    this.opts.metrics.reconnects.inc({ venue: this.opts.adapter.venue });
    if (d.seamless) return;
    const now = this.now();
    // Everything this connection carried stopped with its last frame (a stall: long before now).
    const cause = d.reason === 'stale' ? 'stall' : 'disconnect';
    for (const hole of this.coverage.onSourceLost(feed, cause, feed.stats.lastFrameAt ?? now, `connection ${feed.id} ended: ${d.reason}`, now)) this.recordHole(hole);
    this.feedsDown.add(feed);
    for (const entry of this.books.values()) {
      if (entry.feed !== feed) continue;
      const out = entry.sync.onDisconnect(now);
      if (out.gap !== null) this.opts.metrics.resyncs.inc({ venue: this.opts.adapter.venue, symbol: entry.symbol, reason: 'disconnect' });
      this.act(entry, out);
    }
  }

  /**
   * Each synced book's stream has a hole from now until the next run syncs it again: leave the
   * same marker a dropped connection leaves, so `integrity` shows planned stops too.
   */
  private markBooksStopped(): void {
    const now = this.now();
    let marked = 0;
    for (const entry of this.books.values()) {
      const { gap } = entry.sync.onDisconnect(now, COLLECTOR_STOPPED_DETAIL);
      if (gap === null) continue;
      marked++;
      this.acceptRecord(gap, null);
    }
    if (marked > 0) this.opts.log.info({ books: marked }, 'left a gap marker on each synced book at stop');
  }

  private tickBooks(): void {
    const now = this.now();
    for (const entry of this.books.values()) {
      const record = entry.sync.tick(now);
      if (record !== null) {
        this.publishData(record, entry.feed);
      }
      if (entry.resubscribeDueAt !== null) {
        // A snapshot came meanwhile (a reconnect subscribes afresh) and was good: nothing to ask for.
        if (entry.sync.state === 'synced') entry.resubscribeDueAt = null;
        else if (now >= entry.resubscribeDueAt) this.resubscribe(entry, now);
      } else if (entry.resubscribedAt !== null && entry.sync.state !== 'synced' && now - entry.resubscribedAt >= RESUBSCRIBE_TIMEOUT_MS) {
        this.opts.log.warn({ instrument: entry.instrument }, 'no snapshot after resubscribing; asking again');
        this.requestResubscribe(entry, now);
      }
    }
  }

  private async fetchSnapshot(book: BookSupport, instrument: string, signal: AbortSignal): Promise<RestResponse> {
    if (book.snapshotRequest === undefined) throw new Error(`${this.opts.adapter.venue}: book source rest without snapshotRequest`);
    const req = book.snapshotRequest(this.opts.restBaseUrl, instrument);
    const res = await this.rest.get(req, signal);
    this.capture?.write({ t: res.receiveTime, kind: 'rest', conn: `${this.opts.adapter.venue}/snapshot/${instrument}`, url: req.url, data: res.body });
    return res;
  }

  private settleSnapshot(book: BookSupport, instrument: string, outcome: { ok: true; value: RestResponse } | { ok: false; error: unknown }): void {
    const entry = this.books.get(instrument);
    if (entry === undefined) return;
    const now = this.now();
    let error = outcome.ok ? null : outcome.error;
    if (outcome.ok) {
      try {
        if (book.parseSnapshot === undefined) throw new Error(`${this.opts.adapter.venue}: book source rest without parseSnapshot`);
        const snapshot = book.parseSnapshot(outcome.value.body, instrument, outcome.value.receiveTime);
        const out = entry.sync.onSnapshot(snapshot, now);
        // A snapshot that cannot seed the book (stale, crossed) is a failure too: the refetch backs
        // off instead of spending the venue's weight budget, which other books need, at queue rate.
        // A break in the buffered stream is no fault of the snapshot.
        const bad = out.resync === 'rest_snapshot' && out.reason !== 'sequence_gap';
        entry.snapshotFailures = bad ? entry.snapshotFailures + 1 : 0;
        this.act(entry, out);
        return;
      } catch (err) {
        error = err;
      }
    }
    const code = pollErrorCode(error);
    entry.snapshotFailures++;
    this.opts.metrics.errors.inc({ venue: this.opts.adapter.venue, data_type: 'orderbook', code });
    this.opts.log.warn({ instrument, code, err: errorMessage(error), failures: entry.snapshotFailures }, 'orderbook snapshot failed');
    this.act(entry, entry.sync.onSnapshotFailed(`${code}: ${errorMessage(error)}`, now));
  }

  private handlePollOutcome(o: PollOutcome): void {
    if (o.ok) {
      // Freshness comes from the records themselves (acceptRecord): an answer that carries none
      // is the REST twin of an acknowledged but silent subscription, and must not look fresh.
      this.lastPollError.get(o.poll.dataType)?.delete(o.poll.instrument);
      return;
    }
    innerMap(this.lastPollError, o.poll.dataType).set(o.poll.instrument, o.code);
    // Whether the failure left a hole, the next observation's time will tell; this names the cause.
    this.coverage.onStreamBreak(o.poll.dataType, o.poll.instrument, { cause: 'poll_failed', at: o.at, detail: `poll failed: ${o.code}` });
    this.opts.metrics.errors.inc({ venue: this.opts.adapter.venue, data_type: o.poll.dataType, code: o.code });
  }

  private countBadFrame(err: unknown, frame: string): void {
    const venue = this.opts.adapter.venue;
    const malformed = err instanceof MalformedFrameError;
    const code = malformed ? err.code : 'internal';
    const dataType = malformed ? (err.dataType ?? 'unknown') : 'unknown';
    this.opts.metrics.errors.inc({ venue, data_type: dataType, code });
    this.malformedSinceLog++;
    const now = this.now();
    // A venue can send thousands of bad frames a second; one line per interval is enough to act on.
    if (now - this.lastMalformedLogAt >= MALFORMED_LOG_INTERVAL_MS) {
      this.opts.log.warn({ venue, code, count: this.malformedSinceLog, err: errorMessage(err), frame: frame.slice(0, 200) }, 'skipped bad frames');
      this.lastMalformedLogAt = now;
      this.malformedSinceLog = 0;
    }
  }

  private publish(venueRecord: MarketRecord, onStored?: () => void): void {
    const record = this.inCoins(venueRecord);
    if (record === null) return;
    this.queue.push(record, onStored);
  }

  /** Sizes in coins where the venue counts contracts; null (counted, logged) while the value is unknown. */
  private inCoins(record: MarketRecord): MarketRecord | null {
    if (this.opts.adapter.contracts === undefined || !CONTRACT_SIZED.has(record.dataType)) return record;
    const value = this.coinsPerContract.get(record.instrument);
    if (value !== undefined) return recordInCoins(record, value);
    // Not reached by design: feeds open once every configured instrument's value is known.
    this.opts.metrics.errors.inc({ venue: this.opts.adapter.venue, data_type: record.dataType, code: 'unknown_contract_value' });
    this.opts.log.error({ instrument: record.instrument, dataType: record.dataType }, 'record dropped: contract value unknown');
    return null;
  }
}
