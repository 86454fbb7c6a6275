import type { DataType, PolledDataType, Venue } from '../config/schema.js';
import { DVOL_RESOLUTION_MS } from '../exchanges/deribit_derivatives.js';
import { periodToMs, type PollOptions } from '../exchanges/types.js';
import type { MarketRecord, StreamHoleRecord } from '../records.js';
import { continuityPolicy, type HoleFinding, type StreamBreak } from './continuity.js';
import { StreamCoverage, holeRecord, streamId, type PersistedStream, type StreamCoverageState, type StreamIdentity } from './coverage.js';

/** Why orderbook holes are unrepairable, in their detail. */
export const BOOKS_UNREPAIRABLE = 'orderbooks cannot be refilled from history';

/** How far apart a polled type's observations are: its poll interval, or the period it is sampled at. */
export function pollSpacingMs(dataType: PolledDataType, polls: PollOptions): number {
  const interval = polls.intervalMs[dataType];
  switch (dataType) {
    case 'lsr_top_position':
    case 'lsr_all_account':
      return Math.max(interval, periodToMs(polls.lsrPeriod));
    case 'volatility_index':
      // Candles are one resolution apart whatever the poll interval.
      return Math.max(interval, DVOL_RESOLUTION_MS);
    case 'funding_rate':
    case 'open_interest':
      return interval;
  }
}

export interface VenueCoverageOptions {
  venue: Venue;
  /** Trade ids count up by one per instrument (VenueAdapter.tradeIds). */
  contiguousTradeIds: boolean;
  polls: PollOptions;
  /** Streams of this venue as the previous run left them (coverage file). */
  resume: readonly PersistedStream[];
}

/** A frame source whose outages break the streams it carried (a WsFeed; null for REST). */
export type StreamSource = object;

/** A hole to publish, and what to call once JetStream has stored it (until then the stream's stored mark stays before it). */
export interface HoleOut {
  record: StreamHoleRecord;
  onStored: () => void;
}

/**
 * Continuity of every stream of one venue: which records close which holes, which connection
 * carried which stream (its loss breaks them), and what JetStream has stored of each.
 */
export class VenueCoverage {
  private readonly streams = new Map<string, StreamCoverage>();
  private readonly sourceOf = new Map<string, StreamSource>();

  constructor(private readonly opts: VenueCoverageOptions) {
    for (const p of opts.resume) {
      if (p.identity.venue !== opts.venue) continue;
      this.streams.set(streamId(p.identity.venue, p.identity.dataType, p.identity.instrument), this.create(p.identity, p));
    }
  }

  /**
   * A record of a stream arrived (from `source` where it came over a connection). Returns the
   * hole it closes, and the callback for when JetStream stored the record.
   */
  onRecord(record: MarketRecord, source: StreamSource | null, now: number): { hole: HoleOut | null; onStored: (() => void) | undefined } {
    if (record.dataType === 'orderbook_gap' || record.dataType === 'stream_hole') return { hole: null, onStored: undefined };
    const id = streamId(record.venue, record.dataType, record.instrument);
    let stream = this.streams.get(id);
    if (stream === undefined) {
      const identity: StreamIdentity = { venue: record.venue, marketType: record.marketType, symbol: record.symbol, instrument: record.instrument, dataType: record.dataType };
      stream = this.create(identity, null);
      this.streams.set(id, stream);
    }
    if (source !== null) this.sourceOf.set(id, source);
    const mark = { eventTime: record.eventTime, id: record.dataType === 'trade' ? record.tradeId : null };
    const finding = stream.continuity.onRecord(mark, record.receiveTime);
    // The hole first: the stored mark must not pass it before it is stored itself.
    const hole = finding === null ? null : this.toHole(stream, finding, now);
    return { hole, onStored: stream.published(mark, record.receiveTime) };
  }

  /**
   * Every stream `source` carried (of these data types; default all) stopped being received at
   * `at`. Streams of a type it `carries` that no record has tied to a connection yet (a quiet
   * liquidation stream, one resumed from the coverage file) break with it. Returns the holes that
   * records received since already bound.
   */
  onSourceLost(
    source: StreamSource,
    carries: readonly DataType[],
    brk: StreamBreak,
    now: number,
    only: (dataType: DataType) => boolean = () => true,
  ): HoleOut[] {
    const holes: HoleOut[] = [];
    for (const stream of this.carriedBy(source, carries)) {
      if (!only(stream.identity.dataType)) continue;
      const finding = stream.continuity.onBreak(brk);
      if (finding !== null) holes.push(this.toHole(stream, finding, now));
    }
    return holes;
  }

  /** Every stream: what it received since `since` may have been lost downstream (see StreamContinuity.onDownstreamLoss). */
  onDownstreamLoss(since: number, brk: Omit<StreamBreak, 'at'>, now: number): HoleOut[] {
    const holes: HoleOut[] = [];
    for (const stream of this.streams.values()) {
      const finding = stream.continuity.onDownstreamLoss(since, brk);
      if (finding !== null) holes.push(this.toHole(stream, finding, now));
    }
    return holes;
  }

  /** `source` delivers again: sporadic streams it carried close their holes here. */
  onSourceResumed(source: StreamSource, carries: readonly DataType[], at: number, now: number): HoleOut[] {
    const holes: HoleOut[] = [];
    for (const stream of this.carriedBy(source, carries)) {
      const finding = stream.continuity.onResume(at);
      if (finding !== null) holes.push(this.toHole(stream, finding, now));
    }
    return holes;
  }

  /** One stream broke on its own (a book lost sync, a poll failed). Unknown streams have nothing to break. */
  onStreamBreak(dataType: DataType, instrument: string, brk: StreamBreak): void {
    this.streams.get(streamId(this.opts.venue, dataType, instrument))?.continuity.onBreak(brk);
  }

  /** What the coverage file keeps of this venue's streams now. */
  persisted(now: number): PersistedStream[] {
    return [...this.streams.values()].map((s) => ({ identity: s.identity, ...s.state(now) }));
  }

  /** Streams last delivered by `source`, and those of the types it carries not tied to any source yet. */
  private carriedBy(source: StreamSource, carries: readonly DataType[]): StreamCoverage[] {
    return [...this.streams].flatMap(([id, stream]) => {
      const s = this.sourceOf.get(id);
      return s === source || (s === undefined && carries.includes(stream.identity.dataType)) ? [stream] : [];
    });
  }

  private create(identity: StreamIdentity, resume: StreamCoverageState | null): StreamCoverage {
    const spacingMs = identity.dataType === 'trade' || identity.dataType === 'orderbook' || identity.dataType === 'liquidation' ? 0 : pollSpacingMs(identity.dataType, this.opts.polls);
    const policy = continuityPolicy(identity.dataType, { contiguousTradeIds: this.opts.contiguousTradeIds, spacingMs });
    return new StreamCoverage(identity, policy, resume);
  }

  private toHole(stream: StreamCoverage, finding: HoleFinding, now: number): HoleOut {
    const { identity } = stream;
    const record = holeRecord(identity, finding, now);
    // Known at once: a book's past states are not in any venue's history.
    const unrepairable = identity.dataType === 'orderbook';
    return {
      record: unrepairable ? { ...record, state: 'unrepairable', detail: `${finding.detail}; ${BOOKS_UNREPAIRABLE}` } : record,
      onStored: stream.publishedHole(now),
    };
  }
}
