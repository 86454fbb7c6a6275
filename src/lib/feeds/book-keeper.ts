import { backoffDelay, type BackoffPolicy } from '../backoff.js';
import type { Venue } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { BookSupport } from '../exchanges/types.js';
import type { Logger } from '../log.js';
import { BookSync, type BookSyncOutput, type BookSyncState } from '../orderbook/sync.js';
import type { BookMessage } from '../orderbook/types.js';
import { COLLECTOR_STOPPED_DETAIL, type OrderbookGapRecord, type OrderbookRecord } from '../records.js';
import type { CollectorMetrics } from './collector-metrics.js';
import type { RawCaptureWriter } from './raw-capture.js';
import type { RestClient, RestResponse } from './rest-client.js';
import { pollErrorCode } from './rest-poller.js';
import { SnapshotQueue } from './snapshot-queue.js';
import type { WsFeed } from './ws-feed.js';

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

/** What the collector learns from a book that lost sync. */
export interface BookGap {
  record: OrderbookGapRecord;
  instrument: string;
  /** The feed that delivered the book; null before any message. */
  feed: WsFeed | null;
  /** Receive time of the book's message before the one that showed the gap: frames were lost after it. */
  previousMessageAt: number | null;
}

export interface BookKeeperOptions {
  venue: Venue;
  support: BookSupport;
  orderbook: { depth: number; maxSnapshotsPerSecond: number };
  metrics: CollectorMetrics;
  log: Logger;
  now: () => number;
  rest: RestClient;
  restBaseUrl: string;
  capture: RawCaptureWriter | null;
  /** REST snapshot requests started per second for this venue, at most. */
  snapshotRequestsPerSecond: number;
  /** A valid book to publish, from the feed that delivered it. */
  publish(record: OrderbookRecord, feed: WsFeed | null): void;
  /** A book lost sync (its gap marker is to be published); stop markers come through here too. */
  lostSync(gap: BookGap): void;
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
  /** source `stream`: a resubscribe held back by the pacing, sent by tick from then on. */
  resubscribeDueAt: number | null;
  /** source `stream`: since when the book has waited for a snapshot nobody asked for yet (after a reconnect). */
  awaitingSince: number | null;
  /** Receive times of the book's newest message and the one before it. */
  lastMessageAt: number | null;
  previousMessageAt: number | null;
}

const SNAPSHOT_RETRY: BackoffPolicy = { initialMs: 500, maxMs: 30_000, jitter: 0.3 };
/** A resubscribe (or a reconnect's subscribe) that brought no snapshot in this long is sent again. */
export const RESUBSCRIBE_TIMEOUT_MS = 10_000;
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

/**
 * One venue's orderbooks: a BookSync per instrument fed by book messages, and what they ask for
 * carried out: REST snapshots (paced, backed off), resubscribes (paced, retried while no snapshot
 * comes), metrics and logs of lost sync.
 */
export class BookKeeper {
  private readonly books = new Map<string, BookEntry>();
  private readonly snapshots: SnapshotQueue<RestResponse> | null;
  /** Published snapshots per book per second: the configured maximum until the load thins them (setSnapshotRate). */
  private snapshotsPerSecond: number;

  constructor(private readonly opts: BookKeeperOptions) {
    const { support } = opts;
    this.snapshotsPerSecond = opts.orderbook.maxSnapshotsPerSecond;
    this.snapshots =
      support.source === 'rest'
        ? new SnapshotQueue<RestResponse>({
            perSecond: opts.snapshotRequestsPerSecond,
            now: opts.now,
            fetch: (instrument, signal) => this.fetchSnapshot(instrument, signal),
            settle: (instrument, outcome) => this.settleSnapshot(instrument, outcome),
          })
        : null;
  }

  /** Runs the snapshot queue (REST-snapshot venues) until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await this.snapshots?.run(signal);
  }

  onMessage(feed: WsFeed, m: BookMessage, now: number): void {
    const entry = this.bookFor(m);
    entry.feed = feed;
    entry.previousMessageAt = entry.lastMessageAt;
    entry.lastMessageAt = now;
    if (m.action === 'snapshot') entry.resubscribedAt = null;
    this.act(entry, entry.sync.onMessage(m, now));
  }

  /** A connection ended without a replacement that overlapped it: its books start over. */
  onFeedLost(feed: WsFeed, now: number): void {
    for (const entry of this.books.values()) {
      if (entry.feed !== feed) continue;
      const out = entry.sync.onDisconnect(now);
      if (out.gap !== null) this.opts.metrics.resyncs.inc({ venue: this.opts.venue, symbol: entry.symbol, reason: 'disconnect' });
      this.act(entry, out);
    }
  }

  /**
   * Each synced book's stream has a hole from now until the next run syncs it again: leave the
   * same marker a dropped connection leaves, so `integrity` shows planned stops too.
   */
  markStopped(): void {
    const now = this.opts.now();
    let marked = 0;
    for (const entry of this.books.values()) {
      const { publish, gap } = entry.sync.onDisconnect(now, COLLECTOR_STOPPED_DETAIL);
      if (publish !== null) this.opts.publish(publish, entry.feed);
      if (gap === null) continue;
      marked++;
      this.opts.lostSync({ record: gap, instrument: entry.instrument, feed: entry.feed, previousMessageAt: entry.previousMessageAt });
    }
    if (marked > 0) this.opts.log.info({ books: marked }, 'left a gap marker on each synced book at stop');
  }

  /** Publishes throttled changes and keeps asking for snapshots that do not come. */
  tick(): void {
    const now = this.opts.now();
    for (const entry of this.books.values()) {
      const record = entry.sync.tick(now);
      if (record !== null) this.opts.publish(record, entry.feed);
      if (entry.sync.state === 'synced') {
        entry.awaitingSince = null;
        // A snapshot came meanwhile (a reconnect subscribes afresh) and was good: nothing to ask for.
        entry.resubscribeDueAt = null;
        continue;
      }
      if (this.opts.support.source !== 'stream') continue;
      if (entry.resubscribeDueAt !== null) {
        if (now >= entry.resubscribeDueAt) this.resubscribe(entry, now);
      } else if (entry.resubscribedAt !== null) {
        if (now - entry.resubscribedAt >= RESUBSCRIBE_TIMEOUT_MS) {
          this.opts.log.warn({ instrument: entry.instrument }, 'no snapshot after resubscribing; asking again');
          this.requestResubscribe(entry, now);
        }
      } else if (entry.feed?.stats.state === 'open') {
        // Out of sync with nothing asked: the snapshot a reconnect's subscribe should bring did not
        // come (the venue stalled right then). Without this the book would wait for the next disconnect.
        entry.awaitingSince ??= now;
        if (now - entry.awaitingSince >= RESUBSCRIBE_TIMEOUT_MS) {
          this.opts.log.warn({ instrument: entry.instrument }, 'no snapshot since the connection opened; resubscribing');
          this.requestResubscribe(entry, now);
        }
      }
    }
  }

  /** Every book, and those still to come, publishes at most `perSecond` snapshots a second from now on. */
  setSnapshotRate(perSecond: number): void {
    if (perSecond === this.snapshotsPerSecond) return;
    this.snapshotsPerSecond = perSecond;
    for (const entry of this.books.values()) entry.sync.setPublishInterval(1000 / perSecond);
  }

  health(): BookHealth[] {
    return [...this.books.values()].map((b): BookHealth => {
      const s = b.sync.stats;
      return {
        venue: this.opts.venue,
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
  }

  private bookFor(m: BookMessage): BookEntry {
    const existing = this.books.get(m.instrument);
    if (existing !== undefined) return existing;
    const { support } = this.opts;
    const { depth } = this.opts.orderbook;
    const entry: BookEntry = {
      instrument: m.instrument,
      symbol: m.symbol,
      sync: new BookSync({ rules: support.rules, source: support.source, checksum: support.checksum, depth, minPublishIntervalMs: 1000 / this.snapshotsPerSecond }),
      feed: null,
      countedResyncs: 0,
      snapshotFailures: 0,
      resubscribedAt: null,
      lastResubscribeAt: null,
      resubscribesInARow: 0,
      resubscribeDueAt: null,
      awaitingSince: null,
      lastMessageAt: null,
      previousMessageAt: null,
    };
    this.books.set(m.instrument, entry);
    return entry;
  }

  /** Carries out what BookSync asked for. */
  private act(entry: BookEntry, out: BookSyncOutput): void {
    const { venue, metrics } = this.opts;
    const stats = entry.sync.stats;
    // A book published with a gap is its state before the loss: it goes first.
    if (out.publish !== null && out.gap !== null) this.opts.publish(out.publish, entry.feed);
    if (out.gap !== null) {
      metrics.errors.inc({ venue, data_type: 'orderbook', code: out.gap.reason });
      this.opts.log.warn({ instrument: entry.instrument, reason: out.gap.reason, detail: out.gap.detail, lastUpdateId: out.gap.lastUpdateId }, 'orderbook lost sync');
      this.opts.lostSync({ record: out.gap, instrument: entry.instrument, feed: entry.feed, previousMessageAt: entry.previousMessageAt });
    }
    if (stats.resyncs > entry.countedResyncs) {
      metrics.resyncs.inc({ venue, symbol: entry.symbol, reason: out.reason ?? 'unknown' }, stats.resyncs - entry.countedResyncs);
      entry.countedResyncs = stats.resyncs;
    }
    if (out.publish !== null && out.gap === null) this.opts.publish(out.publish, entry.feed);
    if (out.resync === 'rest_snapshot') {
      const notBefore = entry.snapshotFailures === 0 ? 0 : this.opts.now() + backoffDelay(entry.snapshotFailures - 1, SNAPSHOT_RETRY);
      this.snapshots?.request(entry.instrument, notBefore);
    } else if (out.resync === 'resubscribe') {
      this.requestResubscribe(entry, this.opts.now());
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
    const frames = this.opts.support.resubscribe?.(entry.instrument) ?? [];
    // Not open: the reconnect subscribes afresh, which brings a snapshot anyway.
    if (entry.feed === null) return;
    for (const frame of frames) entry.feed.send(frame);
  }

  private async fetchSnapshot(instrument: string, signal: AbortSignal): Promise<RestResponse> {
    const { support, venue } = this.opts;
    if (support.snapshotRequest === undefined) throw new Error(`${venue}: book source rest without snapshotRequest`);
    const req = support.snapshotRequest(this.opts.restBaseUrl, instrument);
    this.books.get(instrument)?.sync.onSnapshotRequestSent(this.opts.now());
    const res = await this.opts.rest.get(req, signal);
    this.opts.capture?.write({ t: res.receiveTime, kind: 'rest', conn: `${venue}/snapshot/${instrument}`, url: req.url, data: res.body });
    return res;
  }

  private settleSnapshot(instrument: string, outcome: { ok: true; value: RestResponse } | { ok: false; error: unknown }): void {
    const entry = this.books.get(instrument);
    if (entry === undefined) return;
    const { support, venue } = this.opts;
    const now = this.opts.now();
    let error = outcome.ok ? null : outcome.error;
    if (outcome.ok) {
      try {
        if (support.parseSnapshot === undefined) throw new Error(`${venue}: book source rest without parseSnapshot`);
        const snapshot = support.parseSnapshot(outcome.value.body, instrument, outcome.value.receiveTime);
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
    this.opts.metrics.errors.inc({ venue, data_type: 'orderbook', code });
    this.opts.log.warn({ instrument, code, err: errorMessage(error), failures: entry.snapshotFailures }, 'orderbook snapshot failed');
    this.act(entry, entry.sync.onSnapshotFailed(`${code}: ${errorMessage(error)}`, now));
  }
}
