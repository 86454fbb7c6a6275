import type { GapReason, OrderbookGapRecord, OrderbookRecord } from '../records.js';
import { LocalBook } from './book.js';
import type { BookChecksum, BookMessage, SequenceRules, SequenceVerdict, SnapshotSource } from './types.js';

export interface BookSyncOptions {
  rules: SequenceRules;
  source: SnapshotSource;
  /** Verifies messages that carry a non-zero checksum (OKX). */
  checksum?: BookChecksum;
  /** Levels per side the checksum covers; 25 for OKX. */
  checksumDepth?: number;
  /** Levels per side in a published OrderbookRecord. */
  depth: number;
  /** At most one publish per interval (1000 / snapshots per second); tick() publishes what was held back. */
  minPublishIntervalMs: number;
  /** source `rest`: stream updates kept while a snapshot is awaited; beyond it the buffer restarts. */
  maxBufferedUpdates?: number;
}

/**
 * Why a book asked for a resync: a lost sync (GapReason), a REST snapshot older than the stream
 * it must bridge, or a REST snapshot awaited so long that the buffered stream overflowed.
 */
export type ResyncReason = GapReason | 'stale_snapshot' | 'buffer_overflow';

/** What the caller must do after handing BookSync one event. */
export interface BookSyncOutput {
  /** A fresh top-N record to publish. */
  publish: OrderbookRecord | null;
  /** A marker to store where the book lost sync. */
  gap: OrderbookGapRecord | null;
  /** `rest_snapshot`: GET a snapshot and pass it to onSnapshot(); `resubscribe`: make the venue push a new one. */
  resync: 'rest_snapshot' | 'resubscribe' | null;
  /** Why, when `resync` asks again after a loss of sync (counted in stats.resyncs); null for a book's first request. */
  reason: ResyncReason | null;
}

export type BookSyncState = 'awaiting_snapshot' | 'synced';

export interface BookSyncStats {
  /** Resyncs asked for after the first snapshot request: gaps, stale snapshots, failures, buffer overflows. */
  resyncs: number;
  /** Gap records emitted. */
  gaps: number;
  /** REST snapshots that were older than the buffered stream and had to be fetched again. */
  staleSnapshots: number;
  /** Updates applied (snapshots not counted). */
  applied: number;
  /** Updates skipped: already in the book, dropped while waiting for a stream snapshot, or older than a waiting REST book keeps. */
  skipped: number;
  lastUpdateId: number | null;
  bidLevels: number;
  askLevels: number;
  buffered: number;
}

const DEFAULT_CHECKSUM_DEPTH = 25;
const DEFAULT_MAX_BUFFERED_UPDATES = 1000;
/**
 * source `rest`: a book whose snapshot request still waits its turn (hundreds of books share the
 * venue's weight budget) keeps only the updates received this recently. The answer can only be
 * newer than what arrived before the request left; the margin covers a venue answering from a
 * slightly stale cache. Those it lacks make the snapshot stale, and it is fetched again.
 */
export const SNAPSHOT_WAIT_KEEP_MS = 5000;
const NOTHING: BookSyncOutput = Object.freeze({ publish: null, gap: null, resync: null, reason: null });
const APPLY: SequenceVerdict = Object.freeze({ kind: 'apply' });

type Resync = BookSyncOutput['resync'];

/**
 * Keeps one instrument's book in sync with a venue: snapshot + ordered updates checked against the
 * venue's SequenceRules, an optional checksum, and crossed-book protection. Pure: the caller feeds it
 * messages and the clock, and carries out what each BookSyncOutput asks for.
 *
 * Source `rest` (Binance): updates are buffered until onSnapshot(); the buffer is then offered to
 * rules.firstAfterSnapshot until one update bridges the snapshot, and to rules.next after that.
 * Source `stream` (OKX, Deribit): updates before an in-stream snapshot are dropped.
 * Any lost sync emits at most one gap record until the book is synced again.
 */
export class BookSync {
  private readonly book = new LocalBook();
  private readonly checksumDepth: number;
  private readonly maxBuffered: number;
  /** Starts at opts.minPublishIntervalMs; the collector widens it under load (setPublishInterval). */
  private publishIntervalMs: number;

  private _state: BookSyncState = 'awaiting_snapshot';
  /** Id of the last snapshot or update applied; null before a snapshot or when the venue sends none. */
  private lastAppliedId: number | null = null;
  /** After a REST snapshot, until an update bridges it: updates go to rules.firstAfterSnapshot. */
  private bridging = false;
  /** While bridging: the last update skipped as already in the snapshot. */
  private skippedWhileBridging: BookMessage | null = null;
  /** source `rest`: stream updates received while awaiting the snapshot, in arrival order. */
  private buffer: BookMessage[] = [];
  private snapshotRequested = false;
  /** source `rest`: the pending request has left (onSnapshotRequestSent): keep every update from now on. */
  private requestSent = false;
  /** A gap record was emitted and the book has not been synced since: no second record. */
  private gapOpen = false;
  /** Identity for gap records: the last message seen for this instrument. */
  private lastSeen: BookMessage | null = null;
  /** Identity and times for the published record: the last message applied; null while not synced. */
  private lastApplied: BookMessage | null = null;
  private dirty = false;
  private publishedSinceSync = false;
  private lastPublishAt = Number.NEGATIVE_INFINITY;

  private counts = { resyncs: 0, gaps: 0, staleSnapshots: 0, applied: 0, skipped: 0 };

  constructor(private readonly opts: BookSyncOptions) {
    this.checksumDepth = opts.checksumDepth ?? DEFAULT_CHECKSUM_DEPTH;
    this.maxBuffered = opts.maxBufferedUpdates ?? DEFAULT_MAX_BUFFERED_UPDATES;
    this.publishIntervalMs = opts.minPublishIntervalMs;
  }

  /** From now on at most one publish per `ms`; the change held back is published by tick() once it is due. */
  setPublishInterval(ms: number): void {
    this.publishIntervalMs = ms;
  }

  get state(): BookSyncState {
    return this._state;
  }

  get stats(): BookSyncStats {
    return {
      ...this.counts,
      lastUpdateId: this.lastAppliedId,
      bidLevels: this.book.bidLevels,
      askLevels: this.book.askLevels,
      buffered: this.buffer.length,
    };
  }

  /** A message from the stream: an update, or a snapshot the venue pushed in-stream (OKX, Deribit). */
  onMessage(m: BookMessage, now: number): BookSyncOutput {
    this.lastSeen = m;
    if (m.action === 'snapshot') {
      // Positioned in the stream: whatever was buffered is older, and the next update chains with rules.next.
      this.buffer = [];
      this.loadSnapshot(m, false);
      return this.afterChange(this.validate(m, now), now);
    }
    if (this._state === 'synced') return this.afterChange(this.offer(m, now), now);
    if (this.opts.source === 'stream') {
      this.counts.skipped++;
      return NOTHING;
    }
    return this.bufferUpdate(m);
  }

  /** A REST snapshot (the answer to `rest_snapshot`). Ignored while the book is synced. */
  onSnapshot(m: BookMessage, now: number): BookSyncOutput {
    if (this._state === 'synced') return NOTHING;
    this.lastSeen = m;
    const pending = this.buffer;
    this.buffer = [];
    this.requestSent = false;
    this.loadSnapshot(m, true);
    let out = this.validate(m, now);
    let next = 0;
    while (next < pending.length && out.resync === null) out = this.offer(pending[next++]!, now);
    // Lost sync again: the updates not yet offered stay buffered, after the one that failed (if any).
    if (out.resync !== null) this.buffer.push(...pending.slice(next));
    return this.afterChange(out, now);
  }

  /**
   * source `rest`: the request for this book's snapshot is on its way (it may still wait for the
   * venue's weight budget). Until then the book keeps only the updates of the last
   * SNAPSHOT_WAIT_KEEP_MS; from now until the answer, every update. Times are receive times.
   */
  onSnapshotRequestSent(now: number): void {
    this.requestSent = true;
    this.dropOlderThan(now - SNAPSHOT_WAIT_KEEP_MS);
  }

  /** The snapshot request failed or timed out; asks again (the caller paces retries). */
  onSnapshotFailed(reason: string, now: number): BookSyncOutput {
    if (this._state === 'synced') return NOTHING;
    this.counts.resyncs++;
    this.snapshotRequested = true;
    this.requestSent = false;
    return { publish: null, gap: this.openGap('snapshot_failed', reason, now, now), resync: this.resyncKind(), reason: 'snapshot_failed' };
  }

  /**
   * The connection carrying this book closed. Nothing to ask for: resubscribing on reconnect brings a
   * stream snapshot, and for source `rest` the first update after it asks for a REST snapshot.
   */
  onDisconnect(now: number, detail = 'connection closed'): BookSyncOutput {
    // The change the throttle held back is the book's last valid state: published, not dropped.
    const held = this._state === 'synced' && this.dirty && this.lastApplied !== null ? this.publish(this.lastApplied, now) : null;
    const gap = this._state === 'synced' ? this.openGap('disconnect', detail, now, now) : null;
    this.reset();
    this.buffer = [];
    this.snapshotRequested = false;
    this.requestSent = false;
    return gap === null && held === null ? NOTHING : { publish: held, gap, resync: null, reason: null };
  }

  /** Publishes a change that the throttle held back, once the interval has passed. */
  tick(now: number): OrderbookRecord | null {
    const m = this.lastApplied;
    if (m === null || !this.dirty || now - this.lastPublishAt < this.publishIntervalMs) return null;
    return this.publish(m, now);
  }

  private bufferUpdate(m: BookMessage): BookSyncOutput {
    if (this.buffer.length >= this.maxBuffered) {
      // The snapshot is taking too long; start over from the newest update with a fresh request.
      this.buffer = [m];
      this.counts.resyncs++;
      this.snapshotRequested = true;
      this.requestSent = false;
      return { publish: null, gap: null, resync: 'rest_snapshot', reason: 'buffer_overflow' };
    }
    this.buffer.push(m);
    // Waiting its turn, a book of hundreds would otherwise hold up to maxBuffered updates that the
    // snapshot, taken later, makes useless (30 MB of the collector's peak with 200 Binance books).
    if (!this.requestSent) this.dropOlderThan(m.receiveTime - SNAPSHOT_WAIT_KEEP_MS);
    if (this.snapshotRequested) return NOTHING;
    this.snapshotRequested = true;
    // The first request of a book is no resync: `reason` stays null.
    return { publish: null, gap: null, resync: 'rest_snapshot', reason: null };
  }

  private loadSnapshot(m: BookMessage, fromRest: boolean): void {
    this.book.replace(m.bids, m.asks);
    this._state = 'synced';
    this.lastAppliedId = m.lastUpdateId;
    this.bridging = fromRest;
    this.skippedWhileBridging = null;
    this.snapshotRequested = false;
    this.publishedSinceSync = false;
    this.lastApplied = m;
    this.dirty = true;
  }

  /** Offers one update to the synced book. Returns a resync output when sync was lost, else NOTHING. */
  private offer(m: BookMessage, now: number): BookSyncOutput {
    const verdict = this.verdictFor(m);
    if (verdict.kind === 'skip') {
      this.counts.skipped++;
      if (this.bridging) this.skippedWhileBridging = m;
      return NOTHING;
    }
    if (verdict.kind === 'gap') {
      const streamBreak = this.bridging ? this.streamBreakSinceSkipped(m) : verdict.detail;
      if (streamBreak === null) return this.refetchStaleSnapshot(m);
      return this.loseSync('sequence_gap', streamBreak, m, now);
    }
    this.book.apply(m.bids, m.asks);
    this.counts.applied++;
    this.bridging = false;
    if (m.lastUpdateId !== null) this.lastAppliedId = m.lastUpdateId;
    this.lastApplied = m;
    if (m.bids.length > 0 || m.asks.length > 0) this.dirty = true;
    return this.validate(m, now);
  }

  private verdictFor(m: BookMessage): SequenceVerdict {
    const last = this.lastAppliedId;
    if (m.lastUpdateId === null || last === null) return APPLY;
    return this.bridging ? this.opts.rules.firstAfterSnapshot(last, m) : this.opts.rules.next(last, m);
  }

  /** Checks the book after `m` was applied: the venue's checksum, then crossing. */
  private validate(m: BookMessage, now: number): BookSyncOutput {
    const checksum = this.opts.checksum;
    if (checksum !== undefined && m.checksum !== null && m.checksum !== 0) {
      const top = this.book.top(this.checksumDepth);
      const local = checksum(top.bids, top.asks);
      if (local !== m.checksum) {
        return this.loseSync('checksum_mismatch', `checksum ${m.checksum} from venue, ${local} computed`, m, now);
      }
    }
    if (this.book.isCrossed()) {
      const detail = `best bid ${this.book.bestBid?.[0]} >= best ask ${this.book.bestAsk?.[0]}`;
      return this.loseSync('crossed_book', detail, m, now);
    }
    return NOTHING;
  }

  /**
   * An update that does not bridge the REST snapshot, after one that was already in it: if the two do
   * not chain, the stream itself lost updates in between (a gap, detail returned). If they chain, or
   * nothing was skipped, the snapshot is simply older than the stream (null).
   */
  private streamBreakSinceSkipped(m: BookMessage): string | null {
    const skipped = this.skippedWhileBridging?.lastUpdateId ?? null;
    if (skipped === null) return null;
    const verdict = this.opts.rules.next(skipped, m);
    return verdict.kind === 'gap' ? verdict.detail : null;
  }

  /** Drops the oldest buffered updates, those received before `cutoff` (the newest always stays). */
  private dropOlderThan(cutoff: number): void {
    let n = 0;
    while (n < this.buffer.length - 1 && this.buffer[n]!.receiveTime < cutoff) n++;
    if (n > 0) this.buffer.splice(0, n);
    this.counts.skipped += n;
  }

  /** The REST snapshot predates the first buffered update: not a data gap, just fetch a newer one. */
  private refetchStaleSnapshot(m: BookMessage): BookSyncOutput {
    this.counts.staleSnapshots++;
    this.counts.resyncs++;
    this.reset();
    this.buffer = [m];
    this.snapshotRequested = true;
    this.requestSent = false;
    return { publish: null, gap: null, resync: 'rest_snapshot', reason: 'stale_snapshot' };
  }

  private loseSync(reason: GapReason, detail: string, m: BookMessage, now: number): BookSyncOutput {
    const gap = this.openGap(reason, detail, m.eventTime, now);
    this.counts.resyncs++;
    this.reset();
    if (this.opts.source === 'rest' && m.action === 'update') {
      // A genuine stream update: it belongs to the stream the next snapshot is aligned with.
      this.buffer = [m];
      this.snapshotRequested = true;
      this.requestSent = false;
    }
    return { publish: null, gap, resync: this.resyncKind(), reason };
  }

  private openGap(reason: GapReason, detail: string, eventTime: number, now: number): OrderbookGapRecord | null {
    const seen = this.lastSeen;
    if (this.gapOpen || seen === null) return null;
    this.gapOpen = true;
    this.counts.gaps++;
    return {
      dataType: 'orderbook_gap',
      venue: seen.venue,
      marketType: seen.marketType,
      symbol: seen.symbol,
      instrument: seen.instrument,
      eventTime,
      receiveTime: now,
      reason,
      lastUpdateId: this.lastAppliedId ?? 0,
      detail,
    };
  }

  private reset(): void {
    this.book.clear();
    this._state = 'awaiting_snapshot';
    this.lastAppliedId = null;
    this.bridging = false;
    this.skippedWhileBridging = null;
    this.dirty = false;
    this.lastApplied = null;
  }

  private resyncKind(): Resync {
    return this.opts.source === 'rest' ? 'rest_snapshot' : 'resubscribe';
  }

  private afterChange(out: BookSyncOutput, now: number): BookSyncOutput {
    // Only a snapshot that passed validation closes the gap; a bad one must not open a second.
    if (this._state === 'synced') this.gapOpen = false;
    const m = this.lastApplied;
    if (out.resync !== null || m === null || !this.dirty) return out;
    const due = !this.publishedSinceSync || now - this.lastPublishAt >= this.publishIntervalMs;
    if (!due) return out;
    return { publish: this.publish(m, now), gap: null, resync: null, reason: null };
  }

  private publish(m: BookMessage, now: number): OrderbookRecord {
    const top = this.book.top(this.opts.depth);
    this.dirty = false;
    this.publishedSinceSync = true;
    this.lastPublishAt = now;
    return {
      dataType: 'orderbook',
      venue: m.venue,
      marketType: m.marketType,
      symbol: m.symbol,
      instrument: m.instrument,
      eventTime: m.eventTime,
      receiveTime: m.receiveTime,
      lastUpdateId: this.lastAppliedId ?? 0,
      bestBidPrice: top.bids[0]?.[0] ?? null,
      bestAskPrice: top.asks[0]?.[0] ?? null,
      bids: top.bids,
      asks: top.asks,
    };
  }
}
