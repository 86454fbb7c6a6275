import type { Venue } from '../config/schema.js';
import type { MarketType, PriceLevel } from '../records.js';

/**
 * One orderbook message from a venue, normalized but not yet applied: a full snapshot (REST, or the
 * first push of OKX/Deribit) or a set of level changes. Quantities are absolute; "0" deletes a level.
 */
export interface BookMessage {
  venue: Venue;
  marketType: MarketType;
  symbol: string;
  instrument: string;
  action: 'snapshot' | 'update';
  /** Binance `U` (first update id in the event); null where the venue has no such field. */
  firstUpdateId: number | null;
  /**
   * The message's own sequence number: Binance `u` (REST: lastUpdateId), OKX `seqId`, Deribit
   * `change_id`. null only where the venue sent none (OKX before seqId existed).
   */
  lastUpdateId: number | null;
  /** Binance USD-M `pu`, OKX `prevSeqId` (-1 on a snapshot), Deribit `prev_change_id`; null when absent. */
  prevUpdateId: number | null;
  /** OKX CRC32 of the top 25 levels after this message is applied; null or 0 means none to verify. */
  checksum: number | null;
  bids: PriceLevel[];
  asks: PriceLevel[];
  eventTime: number;
  receiveTime: number;
}

/**
 * What to do with an update, given the book's last applied id. `skip`: already contained in the
 * book (older than the snapshot, or a repeat). `gap`: something was missed; the book must resync.
 */
export type SequenceVerdict = { kind: 'apply' } | { kind: 'skip' } | { kind: 'gap'; detail: string };

/** A venue's documented rules for chaining book messages. Pure functions; one object per venue. */
export interface SequenceRules {
  /**
   * The first update considered after a snapshot with id `snapshotId` (buffered updates are offered
   * in arrival order): stale ones are skipped, the one that bridges the snapshot is applied, and one
   * that starts beyond it means the snapshot is too old (gap).
   */
  firstAfterSnapshot(snapshotId: number, m: BookMessage): SequenceVerdict;
  /** Every later update, given the id of the last message applied. */
  next(lastAppliedId: number, m: BookMessage): SequenceVerdict;
}

/** Where a book's snapshot comes from, and so how it resyncs. */
export type SnapshotSource =
  /** Binance: buffer stream diffs, GET a REST snapshot, align. */
  | 'rest'
  /** OKX, Deribit: the venue pushes a snapshot after (re)subscribing. */
  | 'stream';

/** Signed CRC32 of the book's top levels, as the venue computes it (OKX). */
export type BookChecksum = (bids: readonly PriceLevel[], asks: readonly PriceLevel[]) => number;
