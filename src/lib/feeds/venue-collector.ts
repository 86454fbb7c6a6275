import { boundedSignal } from '../abort.js';
import { backoffDelay, sleep, type BackoffPolicy } from '../backoff.js';
import type { DataType, PolledDataType } from '../config/schema.js';
import { ConfigError, errorMessage } from '../errors.js';
import { CONTRACT_SIZED, recordInCoins } from '../exchanges/contracts.js';
import { MalformedFrameError, type PollOptions, type RestRequest, type VenueAdapter } from '../exchanges/types.js';
import type { Logger } from '../log.js';
import type { BookMessage } from '../orderbook/types.js';
import type { MarketRecord } from '../records.js';
import { BookKeeper, type BookGap, type BookHealth } from './book-keeper.js';
import type { CollectorMetrics } from './collector-metrics.js';
import type { PersistedStream } from './coverage.js';
import { RawCaptureWriter } from './raw-capture.js';
import { RecordQueue, type RecordSink } from './record-queue.js';
import { RestClient } from './rest-client.js';
import { RestPoller, pollErrorCode, type PollOutcome } from './rest-poller.js';
import { StreamHealthTracker, type StreamHealth } from './stream-health.js';
import { VenueCoverage, type HoleOut } from './venue-coverage.js';
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
  /** Records of one subject per JetStream message, at most (collector.publish.maxRecordsPerMessage); default 1. */
  maxRecordsPerMessage?: number;
  /** Records waiting for the sink, estimated bytes, before the sockets pause (default 16 MiB). */
  maxQueuedBytes?: number;
  /** Snapshot requests started per second for this venue, at most. */
  snapshotRequestsPerSecond?: number;
  /** This venue's streams as the previous run left them (coverage file); a start closes their holes. */
  resume?: readonly PersistedStream[];
  /** Injected in tests; otherwise built from the adapter's rate limit. */
  rest?: RestClient;
  now?: () => number;
}

export interface ConnectionHealth {
  venue: string;
  id: string;
  dataTypes: readonly DataType[];
  state: FeedState;
  connects: number;
  reconnects: number;
  handovers: number;
  /** Pings sent to a connection silent after we resumed reading it (ws-feed windowNudgeDue). */
  windowNudges: number;
  lastDisconnectReason: string | null;
}

export interface VenueHealth {
  streams: StreamHealth[];
  connections: ConnectionHealth[];
  books: BookHealth[];
}

const MALFORMED_LOG_INTERVAL_MS = 10_000;
/** An open connection this long resets the reconnect backoff. */
const STABLE_CONNECTION_MS = 60_000;
/** Throttled book changes are published at most this late. */
const BOOK_TICK_MS = 100;
const DEFAULT_SNAPSHOT_REQUESTS_PER_SECOND = 3;
/** Asking again for contract values the venue did not give: the feeds wait for them. */
const CONTRACT_VALUE_RETRY: BackoffPolicy = { initialMs: 1000, maxMs: 60_000, jitter: 0.3 };
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
  private readonly capture: RawCaptureWriter | null;
  /** null: the venue has no orderbooks. */
  private readonly books: BookKeeper | null;
  private readonly streamHealth: StreamHealthTracker;
  /** The instrument ids the configured symbols' records carry: what health expects to hear from. */
  private readonly instruments: readonly string[];
  private readonly wsTypes: readonly DataType[];
  /** Coins per contract of each configured instrument, where the venue counts sizes in contracts. */
  private readonly coinsPerContract = new Map<string, string>();
  private readonly queue: RecordQueue;
  private readonly coverage: VenueCoverage;
  /**
   * Feeds that have not delivered a frame since they lost their connection (or a frame), or since
   * start: their first frame closes the holes of sporadic streams, which records cannot bound.
   */
  private readonly feedsDown: Set<WsFeed>;
  private readonly now: () => number;
  private malformedSinceLog = 0;
  private lastMalformedLogAt = -Infinity;

  constructor(private readonly opts: VenueCollectorOptions) {
    this.now = opts.now ?? Date.now;
    const { adapter, metrics } = opts;
    const venue = adapter.venue;
    const { ws, polled } = splitDataTypes(adapter, opts.dataTypes);
    this.wsTypes = ws;
    this.instruments = [...new Set(opts.symbols.map((s) => adapter.instrumentOf(s)))];
    this.streamHealth = new StreamHealthTracker({
      venue,
      dataTypes: opts.dataTypes,
      polledTypes: polled,
      instruments: this.instruments,
      startedAt: this.now(),
      graceMs: opts.startupGraceMs,
      metrics,
    });
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
    this.feedsDown = new Set(this.feeds);
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
    this.queue = new RecordQueue(opts.sink, { pause: () => this.feeds.forEach((f) => f.pause()), resume: () => this.feeds.forEach((f) => f.resume()) }, {
      maxRecordsPerMessage: opts.maxRecordsPerMessage ?? 1,
      maxQueuedBytes: opts.maxQueuedBytes ?? 16 * 1024 * 1024,
    });
    this.books =
      adapter.book === null
        ? null
        : new BookKeeper({
            venue,
            support: adapter.book,
            orderbook: opts.orderbook,
            metrics,
            log: opts.log,
            now: this.now,
            rest: this.rest,
            restBaseUrl: opts.restBaseUrl,
            capture: this.capture,
            snapshotRequestsPerSecond: opts.snapshotRequestsPerSecond ?? DEFAULT_SNAPSHOT_REQUESTS_PER_SECOND,
            publish: (record, feed) => this.publishData(record, feed),
            lostSync: (gap) => this.bookLostSync(gap),
          });
  }

  /** Runs connections, polls and book upkeep until the signal aborts, then hands every queued record to the sink. */
  async run(daemonSignal: AbortSignal): Promise<void> {
    // Every feed (run and backoff), poll loop and snapshot request waits on this signal at once;
    // with many symbols that is more than Node's default of 10 listeners, and not a leak.
    const bound = 2 * this.feeds.length + this.pollCount + this.opts.symbols.length + 8;
    const { signal, release } = boundedSignal(daemonSignal, bound);
    const ticker = setInterval(() => this.books?.tick(), BOOK_TICK_MS);
    try {
      const feeds = async () => {
        await this.loadContractValues(signal);
        await Promise.all(this.feeds.map((f) => f.run(signal)));
      };
      await Promise.all([feeds(), this.poller?.run(signal), this.books?.run(signal)]);
    } finally {
      clearInterval(ticker);
      release();
    }
    this.books?.markStopped();
    await this.drain();
    this.flushMessageCounts();
    await this.capture?.close();
  }

  /**
   * Venues that count sizes in contracts: asks for every configured instrument's contract value,
   * again with backoff until all are known, before the feeds open. A size that cannot be told in
   * coins is not published in contracts instead. One listing of every contract answers for all
   * where the venue has one: asked one by one, hundreds of instruments queued behind the polls for
   * the same rate budget, and the feeds of 100 OKX swaps had not opened after 4 minutes. An
   * instrument the listing lacks is asked for alone.
   */
  private async loadContractValues(signal: AbortSignal): Promise<void> {
    const contracts = this.opts.adapter.contracts;
    if (contracts === undefined || this.feeds.length === 0) return;
    const venue = this.opts.adapter.venue;
    const fetchBody = async (req: RestRequest, conn: string): Promise<string> => {
      const res = await this.rest.get(req, signal);
      this.capture?.write({ t: res.receiveTime, kind: 'rest', conn, url: res.url, data: res.body });
      return res.body;
    };
    for (let failures = 0; !signal.aborted; failures++) {
      const missing = this.instruments.filter((i) => !this.coinsPerContract.has(i));
      let listed: ((instrument: string) => string) | null = null;
      if (missing.length > 1 && contracts.listAll !== undefined) {
        try {
          listed = contracts.reader(await fetchBody(contracts.listAll(this.opts.restBaseUrl), `${venue}/contracts`));
        } catch (err) {
          if (signal.aborted) return;
          this.opts.log.warn({ code: pollErrorCode(err), err: errorMessage(err) }, 'contract listing unavailable; asking instrument by instrument');
        }
      }
      for (const instrument of missing) {
        if (signal.aborted) return;
        try {
          let value: string | null = null;
          if (listed !== null) {
            try {
              value = listed(instrument);
            } catch (err) {
              if (!(err instanceof MalformedFrameError && err.reason === 'unknown_symbol')) throw err;
            }
          }
          value ??= contracts.reader(await fetchBody(contracts.request(this.opts.restBaseUrl, instrument), `${venue}/contracts/${instrument}`))(instrument);
          this.coinsPerContract.set(instrument, value);
          this.streamHealth.contractValueProblem(instrument, null);
        } catch (err) {
          if (signal.aborted) return;
          const code = pollErrorCode(err);
          this.streamHealth.contractValueProblem(instrument, `contract value unknown, ${code}: ${errorMessage(err)}`);
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

  /** Records wait for the sink (JetStream): this venue's sockets are paused. */
  get publishBackedUp(): boolean {
    return this.queue.backedUp;
  }

  /** Book snapshots per instrument per second, at most, from now on (the collector thins them under load). */
  setBookSnapshotRate(perSecond: number): void {
    this.books?.setSnapshotRate(perSecond);
  }

  health(): VenueHealth {
    const venue = this.opts.adapter.venue;
    const streams = this.streamHealth.streams(this.now());
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
        windowNudges: s.windowNudges,
        lastDisconnectReason: s.lastDisconnectReason,
      };
    });
    return { streams, connections, books: this.books?.health() ?? [] };
  }

  /** Returns true when the frame carried market data (a replacement connection proves itself with it). */
  private handleFrame(feed: WsFeed, frame: string, receiveTime: number): boolean {
    const { adapter } = this.opts;
    this.capture?.write({ t: receiveTime, kind: 'ws', conn: feed.id, url: feed.url, data: frame });
    if (this.feedsDown.delete(feed)) {
      for (const hole of this.coverage.onSourceResumed(feed, feed.dataTypes, receiveTime, this.now())) this.recordHole(hole);
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
      // A data frame that cannot be read is data lost (the whole frame is refused): the streams it
      // may have carried are judged around it. A frame about a symbol not collected loses nothing.
      if (err instanceof MalformedFrameError && (err.reason === 'malformed_json' || err.reason === 'unexpected_shape')) {
        const brk = { cause: 'frames_lost' as const, at: receiveTime, detail: `unreadable frame on ${feed.id}: ${err.reason}` };
        const lost = (t: DataType) => t !== 'orderbook' && (err.dataType === null || err.dataType === t);
        for (const hole of this.coverage.onSourceLost(feed, feed.dataTypes, brk, this.now(), lost)) this.recordHole(hole);
        // The next frame shows the connection delivers again: sporadic streams close there.
        this.feedsDown.add(feed);
      }
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

  private acceptBookMessage(feed: WsFeed, m: BookMessage, now: number): void {
    this.countMessage('orderbook');
    if (this.books === null) throw new MalformedFrameError('unexpected_shape', `${this.opts.adapter.venue} has no orderbooks but sent a book message`, 'orderbook');
    this.books.onMessage(feed, m, now);
  }

  /** A record from a frame (`source`: its feed) or a poll (null), or a gap marker. */
  private acceptRecord(record: MarketRecord, source: WsFeed | null): void {
    this.countMessage(record.dataType);
    this.publishData(record, source);
  }

  /** Messages counted since mprism_collector_messages_total was last updated, by data type. */
  private readonly uncountedMessages = new Map<MarketRecord['dataType'], number>();
  private messageCountScheduled = false;

  /**
   * Counted into the metric at the end of this turn of the event loop, once per data type: a
   * labelled counter update per record cost more than the record's own bookkeeping. A scrape runs
   * in a turn of its own, so it sees every message counted.
   */
  private countMessage(dataType: MarketRecord['dataType']): void {
    this.uncountedMessages.set(dataType, (this.uncountedMessages.get(dataType) ?? 0) + 1);
    if (this.messageCountScheduled) return;
    this.messageCountScheduled = true;
    setImmediate(() => this.flushMessageCounts());
  }

  private flushMessageCounts(): void {
    this.messageCountScheduled = false;
    const venue = this.opts.adapter.venue;
    for (const [dataType, n] of this.uncountedMessages) this.opts.metrics.messages.inc({ venue, data_type: dataType }, n);
    this.uncountedMessages.clear();
  }

  /** Market data on its way out: freshness, continuity (a hole it closes is recorded first), then the queue. */
  private publishData(record: MarketRecord, source: WsFeed | null): void {
    if (record.dataType === 'orderbook_gap' || record.dataType === 'stream_hole') {
      this.publish(record);
      return;
    }
    this.streamHealth.markSuccess(record.dataType, record.instrument, record.receiveTime);
    const { hole, onStored } = this.coverage.onRecord(record, source, this.now());
    if (hole !== null) this.recordHole(hole);
    this.publish(record, onStored);
  }

  private recordHole({ record: hole, onStored }: HoleOut): void {
    this.opts.metrics.holes.inc({ venue: hole.venue, data_type: hole.holeDataType, cause: hole.cause });
    this.opts.log.warn(
      { instrument: hole.instrument, dataType: hole.holeDataType, cause: hole.cause, from: new Date(hole.fromTime).toISOString(), to: new Date(hole.toTime).toISOString(), firstMissingId: hole.firstMissingId, lastMissingId: hole.lastMissingId, missing: hole.missingCount, detail: hole.detail },
      'hole in stream recorded',
    );
    this.publish(hole, onStored);
  }

  /**
   * The bus dropped: what it acknowledged since `since` may be gone (nats-server acknowledges
   * before its write reaches the disk). Those records become holes that repair refills.
   */
  busLost(since: number, detail: string): void {
    for (const hole of this.coverage.onDownstreamLoss(since, { cause: 'nats_lost', detail }, this.now())) this.recordHole(hole);
  }

  /** What the coverage file keeps of this venue's streams now. */
  coverageState(): PersistedStream[] {
    return this.coverage.persisted(this.now());
  }

  private handleDisconnect(feed: WsFeed, d: FeedDisconnect): void {
    this.opts.metrics.reconnects.inc({ venue: this.opts.adapter.venue });
    if (d.seamless) return;
    const now = this.now();
    // Everything this connection carried stopped with its last frame (a stall: long before now).
    const cause = d.reason === 'stale' ? 'stall' : 'disconnect';
    const brk = { cause, at: feed.stats.lastFrameAt ?? now, detail: `connection ${feed.id} ended: ${d.reason}` } as const;
    for (const hole of this.coverage.onSourceLost(feed, feed.dataTypes, brk, now)) this.recordHole(hole);
    this.feedsDown.add(feed);
    this.books?.onFeedLost(feed, now);
  }

  /**
   * A book lost sync: its marker is published and its stream broken. A skipped sequence id means
   * the connection lost frames while it stayed open (a stall shorter than the watchdog's
   * threshold): what else it carried may be missing too, so those streams are judged around the
   * loss. Books judge themselves.
   */
  private bookLostSync(gap: BookGap): void {
    const { record } = gap;
    this.acceptRecord(record, null);
    const now = this.now();
    const detail = `${record.reason}: ${record.detail}`;
    this.coverage.onStreamBreak('orderbook', gap.instrument, { cause: record.reason === 'disconnect' ? 'disconnect' : 'book_resync', at: now, detail });
    if (record.reason !== 'sequence_gap' || gap.feed === null) return;
    // The book's message before the one that showed the gap came before the loss began.
    const at = gap.previousMessageAt ?? now;
    const brk = { cause: 'frames_lost', at, detail: `${gap.instrument} book on ${gap.feed.id}: ${detail}` } as const;
    for (const hole of this.coverage.onSourceLost(gap.feed, gap.feed.dataTypes, brk, now, (t) => t !== 'orderbook')) this.recordHole(hole);
  }

  private handlePollOutcome(o: PollOutcome): void {
    if (o.ok) {
      this.streamHealth.pollSucceeded(o.poll.dataType, o.poll.instrument);
      return;
    }
    this.streamHealth.pollFailed(o.poll.dataType, o.poll.instrument, o.code);
    // Whether the failure left a hole, the next observation's time will tell; this names the cause.
    this.coverage.onStreamBreak(o.poll.dataType, o.poll.instrument, { cause: 'poll_failed', at: o.at, detail: `poll failed: ${o.code}` });
    this.opts.metrics.errors.inc({ venue: this.opts.adapter.venue, data_type: o.poll.dataType, code: o.code });
  }

  private countBadFrame(err: unknown, frame: string): void {
    const venue = this.opts.adapter.venue;
    const malformed = err instanceof MalformedFrameError;
    const code = malformed ? err.reason : 'internal';
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
