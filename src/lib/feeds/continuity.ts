import type { DataType } from '../config/schema.js';
import type { HoleCause, HoleExtent } from '../records.js';

/**
 * How a stream's continuity is judged from its own records.
 * - `trade`: by ids. `contiguous`: each id is the previous + 1, so any jump is a hole; otherwise
 *   ids only grow and a jump is a hole only across a break the collector saw (a disconnect, a stall,
 *   its own restart), bounded by the ids on either side.
 * - `polled`: by observation times. Observations on the venue's grid (long/short periods, DVOL
 *   candles) leave a hole when two consecutive ones are more than one step apart; observations
 *   stamped at poll time (funding, open interest) when more than HOLE_SPACING_FACTOR polls apart.
 * - `book`: a break (resync, disconnect) is a hole until the next valid book is published.
 * - `sporadic` (liquidations): records may be minutes apart, so the hole is the connection's
 *   outage itself: from the break to the first frame on the new connection.
 */
export type ContinuityPolicy =
  | { kind: 'trade'; contiguousIds: boolean }
  | { kind: 'polled'; spacingMs: number; grid: boolean }
  | { kind: 'book' }
  | { kind: 'sporadic' };

/** The newest record of a stream: its exchange time and, for trades, its id (decimal string). */
export interface StreamMark {
  eventTime: number;
  id: string | null;
}

/** When and why a stream stopped being received. */
export interface StreamBreak {
  cause: HoleCause;
  /** Local time of the last frame or successful poll before the break, epoch ms. */
  at: number;
  detail: string;
}

/** A hole the tracker found, ready to be recorded. */
export type HoleFinding = HoleExtent;

/** Observations further apart than this many spacings leave a hole (one late poll does not). */
export const HOLE_SPACING_FACTOR = 2;
/**
 * Slack between local receive times and exchange event times (latency, clock skew) where a hole
 * is bounded by a break time rather than by records: a record this much older than the break may
 * still have been in flight.
 */
export const HOLE_TIME_MARGIN_MS = 5000;

/** The policy of a data type on a venue. */
export function continuityPolicy(dataType: DataType, opts: { contiguousTradeIds: boolean; spacingMs: number }): ContinuityPolicy {
  const polled = (grid: boolean): ContinuityPolicy => ({ kind: 'polled', spacingMs: opts.spacingMs, grid });
  switch (dataType) {
    case 'trade':
      return { kind: 'trade', contiguousIds: opts.contiguousTradeIds };
    case 'orderbook':
      return { kind: 'book' };
    case 'liquidation':
      return { kind: 'sporadic' };
    case 'funding_rate':
    case 'open_interest':
      return polled(false);
    case 'lsr_top_position':
    case 'lsr_all_account':
    case 'volatility_index':
      return polled(true);
  }
}

/** A trade id below the newest one, this much later in time, is a new id sequence, not a replay. */
export const ID_RESET_AFTER_MS = 60_000;

/** Checkpoints at least a second apart, and how many are kept (at least this many seconds back). */
const CHECKPOINT_EVERY_MS = 1000;
const CHECKPOINTS = 300;

/** Trades remembered with their receive times, to place a break found late among them. */
const RECENT_TRADES = 512;

/** A ring starts this small: most streams of a collector with hundreds are quiet. */
const RING_INITIAL = 16;

/**
 * A stream's newest trade marks with their receive times, oldest first, in typed arrays that grow
 * to `capacity` and then wrap. A collector keeps hundreds of trade streams: an object per
 * remembered trade (the entry, its mark, their boxed numbers) took about 130 bytes where this
 * takes 24. Ids that are plain integers below 2^53 are kept as numbers, any other as its string.
 */
export class TradeMarkRing {
  private eventTimes: Float64Array<ArrayBuffer>;
  private receivedAts: Float64Array<ArrayBuffer>;
  /** NaN: the id is in `texts` (or null). */
  private ids: Float64Array<ArrayBuffer>;
  /** Only once an id did not fit a number; null where it did. */
  private texts: (string | null)[] | null = null;
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`TradeMarkRing capacity ${capacity}: at least 1`);
    const size = Math.min(RING_INITIAL, capacity);
    this.eventTimes = new Float64Array(size);
    this.receivedAts = new Float64Array(size);
    this.ids = new Float64Array(size);
  }

  get length(): number {
    return this.count;
  }

  push(mark: StreamMark, receivedAt: number): void {
    if (this.count === this.ids.length && this.count < this.capacity) this.grow(Math.min(this.capacity, this.count * 2));
    const size = this.ids.length;
    let i: number;
    if (this.count < size) {
      i = (this.start + this.count) % size;
      this.count++;
    } else {
      i = this.start;
      this.start = (this.start + 1) % size;
    }
    this.eventTimes[i] = mark.eventTime;
    this.receivedAts[i] = receivedAt;
    const asNumber = numericId(mark.id);
    this.ids[i] = asNumber;
    if (Number.isNaN(asNumber)) (this.texts ??= new Array<string | null>(size).fill(null))[i] = mark.id;
    else if (this.texts !== null) this.texts[i] = null;
  }

  /** The k-th mark, 0 the oldest kept. */
  mark(k: number): StreamMark {
    const i = this.slot(k);
    const id = this.ids[i]!;
    return { eventTime: this.eventTimes[i]!, id: Number.isNaN(id) ? (this.texts?.[i] ?? null) : String(id) };
  }

  receivedAt(k: number): number {
    return this.receivedAts[this.slot(k)]!;
  }

  /** The newest entry received at or before `at`, or -1. */
  lastReceivedBy(at: number): number {
    for (let k = this.count - 1; k >= 0; k--) if (this.receivedAt(k) <= at) return k;
    return -1;
  }

  private slot(k: number): number {
    if (k < 0 || k >= this.count) throw new RangeError(`mark ${k} of ${this.count}`);
    return (this.start + k) % this.ids.length;
  }

  /** Copies the entries, oldest first, into arrays of `size`. */
  private grow(size: number): void {
    const order = Array.from({ length: this.count }, (_, k) => this.slot(k));
    const copy = (from: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const to = new Float64Array(size);
      order.forEach((i, k) => (to[k] = from[i]!));
      return to;
    };
    this.eventTimes = copy(this.eventTimes);
    this.receivedAts = copy(this.receivedAts);
    this.ids = copy(this.ids);
    if (this.texts !== null) {
      const texts = this.texts;
      this.texts = [...order.map((i) => texts[i] ?? null), ...new Array<string | null>(size - this.count).fill(null)];
    }
    this.start = 0;
  }
}

/**
 * The id as a number where it spells one exactly (a plain integer below 2^53, no leading zero: such
 * a spelling is what String() gives back, so no string is made per trade to check); NaN otherwise.
 */
function numericId(id: string | null): number {
  if (id === null || !/^(?:0|[1-9]\d{0,15})$/.test(id)) return Number.NaN;
  const n = Number(id);
  return Number.isSafeInteger(n) ? n : Number.NaN;
}

const isId = (id: string | null): id is string => id !== null && /^\d+$/.test(id);

/**
 * One stream's continuity: fed every record and every break, it says where a hole was. Pure and
 * synchronous; the collector persists `last` (of stored records) and the pending break so that a
 * restart, even after kill -9, resumes the judgement where it stopped.
 */
export class StreamContinuity {
  private lastSeen: StreamMark | null;
  private pending: StreamBreak | null;
  /** The newest trades with their receive times: a break found late (a book gap) is placed among them. */
  private readonly recent = new TradeMarkRing(RECENT_TRADES);
  /** One trade a second with its receive time, for a loss downstream found after the fact. */
  private readonly checkpoints = new TradeMarkRing(CHECKPOINTS);
  private firstSeen: StreamMark | null = null;

  constructor(
    readonly policy: ContinuityPolicy,
    /** Where an earlier run stopped: its newest stored record and why (and since when) it stopped. */
    resume: { last: StreamMark | null; broken: StreamBreak } | null = null,
  ) {
    this.lastSeen = resume?.last ?? null;
    this.pending = resume?.broken ?? null;
  }

  get last(): StreamMark | null {
    return this.lastSeen;
  }

  /** The break not yet closed by a record, if any. */
  get broken(): StreamBreak | null {
    return this.pending;
  }

  /**
   * The stream stopped being received at `brk.at`. The first cause and time of an outage are kept.
   * A break found late (frames lost on a connection that stayed open, noticed at the next book
   * update) may already have trades from both sides of the loss behind it: the trades received
   * since `brk.at` are searched for the jump. Where there is none, the loss is still ahead and the
   * next trade decides.
   */
  onBreak(brk: StreamBreak): HoleFinding | null {
    if (this.policy.kind === 'trade' && !this.policy.contiguousIds) {
      // Every jump among them: ids that skip naturally (aggregated fills) cannot be told from a
      // loss, so one hole spans from the first jump to the last, and repair finds what was missing.
      let first: HoleFinding | null = null;
      let last: HoleFinding | null = null;
      for (let k = Math.max(0, this.recent.lastReceivedBy(brk.at)); k + 1 < this.recent.length; k++) {
        const hole = this.between(this.recent.mark(k), this.recent.mark(k + 1), brk);
        if (hole === null) continue;
        first ??= hole;
        last = hole;
      }
      if (first !== null && last !== null) return { ...first, toTime: last.toTime, lastMissingId: last.lastMissingId };
    }
    if (this.pending === null || brk.at < this.pending.at) this.pending = brk;
    return null;
  }

  /**
   * Records received since `since` may have been lost downstream (the bus dropped what it had
   * acknowledged). Trades: a hole over exactly those, bounded by their ids. Books and sporadic
   * streams break (their next record or resume closes the hole); polled streams are judged by
   * their own spacing.
   */
  onDownstreamLoss(since: number, brk: Omit<StreamBreak, 'at'>): HoleFinding | null {
    if (this.policy.kind === 'polled') return null;
    if (this.policy.kind !== 'trade') {
      this.onBreak({ ...brk, at: since });
      return null;
    }
    // The newest trade received at or before `since` (a checkpoint a second apart: whatever the
    // trade rate, the window is bounded by time, not by how many trades are remembered).
    const newest = this.lastSeen;
    // Nothing received since: nothing of this stream was on its way.
    if (this.recent.length === 0 || this.recent.receivedAt(this.recent.length - 1) <= since) return null;
    const cp = this.checkpoints.lastReceivedBy(since);
    const before = cp < 0 ? null : this.checkpoints.mark(cp);
    if (newest === null || !isId(newest.id)) return null;
    // No trade before the window in this run: the hole starts at the first one received.
    const first = before !== null && isId(before.id) ? BigInt(before.id) + 1n : this.firstSeen !== null && isId(this.firstSeen.id) ? BigInt(this.firstSeen.id) : null;
    if (first === null || BigInt(newest.id) < first) return null;
    const count = this.policy.contiguousIds ? Number(BigInt(newest.id) - first + 1n) : null;
    return this.hole(before?.eventTime ?? this.firstSeen?.eventTime ?? newest.eventTime, newest.eventTime, String(first), newest.id, count, brk.cause, brk.detail);
  }

  /** The hole between two trades received one after the other across a break, if any was missed there. */
  private between(before: StreamMark, after: StreamMark, brk: StreamBreak): HoleFinding | null {
    if (!isId(before.id) || !isId(after.id)) return null;
    const a = BigInt(before.id);
    const b = BigInt(after.id);
    if (b <= a + 1n) return null;
    return this.hole(before.eventTime, after.eventTime, String(a + 1n), String(b - 1n), null, brk.cause, brk.detail);
  }

  /**
   * The stream's connection delivers again. Closes the hole of a sporadic stream (its records
   * cannot tell); other streams wait for their next record, which bounds the hole more tightly.
   */
  onResume(at: number): HoleFinding | null {
    if (this.policy.kind !== 'sporadic' || this.pending === null) return null;
    const brk = this.pending;
    this.pending = null;
    return this.hole(Math.max(this.lastSeen?.eventTime ?? -Infinity, brk.at - HOLE_TIME_MARGIN_MS), at + HOLE_TIME_MARGIN_MS, null, null, null, brk.cause, brk.detail);
  }

  /**
   * A record of the stream arrived. Returns the hole it closes, if any. Records older than the
   * newest (replays, repeated polls, overlapping connections) change nothing.
   */
  onRecord(mark: StreamMark, receivedAt = 0): HoleFinding | null {
    const last = this.lastSeen;
    if (this.policy.kind === 'trade') {
      this.recent.push(mark, receivedAt);
      this.firstSeen ??= mark;
      const checkpoints = this.checkpoints.length;
      if (checkpoints === 0 || receivedAt - this.checkpoints.receivedAt(checkpoints - 1) >= CHECKPOINT_EVERY_MS) this.checkpoints.push(mark, receivedAt);
    }
    switch (this.policy.kind) {
      case 'trade':
        return this.onTrade(mark, last, this.policy.contiguousIds);
      case 'polled': {
        if (last !== null && mark.eventTime <= last.eventTime) return null;
        this.lastSeen = mark;
        const brk = this.pending;
        this.pending = null;
        // On a grid (a period, candles) one step is the whole allowance; poll-timed observations may drift.
        const allowed = this.policy.grid ? this.policy.spacingMs : HOLE_SPACING_FACTOR * this.policy.spacingMs;
        if (last === null || mark.eventTime - last.eventTime <= allowed) return null;
        const cause: HoleCause = brk?.cause ?? 'poll_gap';
        const detail = brk?.detail ?? `observations ${Math.round((mark.eventTime - last.eventTime) / 1000)} s apart (spacing ${Math.round(this.policy.spacingMs / 1000)} s)`;
        return this.hole(last.eventTime, mark.eventTime, null, null, null, cause, detail);
      }
      case 'book': {
        if (last !== null && mark.eventTime < last.eventTime) return null;
        this.lastSeen = mark;
        const brk = this.pending;
        if (brk === null) return null;
        this.pending = null;
        const from = last?.eventTime ?? brk.at - HOLE_TIME_MARGIN_MS;
        return this.hole(from, mark.eventTime, null, null, null, brk.cause, brk.detail);
      }
      case 'sporadic': {
        // A record proves the stream flows again even where no resume was seen (a stream the
        // previous run left broken, before this run has tied it to a connection).
        const hole = this.onResume(mark.eventTime);
        if (last === null || mark.eventTime > last.eventTime) this.lastSeen = mark;
        return hole;
      }
    }
  }

  private onTrade(mark: StreamMark, last: StreamMark | null, contiguous: boolean): HoleFinding | null {
    if (!isId(mark.id)) {
      // A venue without numeric ids: only a break can say there was a hole.
      return this.closeByTime(mark, last);
    }
    if (last === null || !isId(last.id)) {
      return this.closeByTime(mark, last);
    }
    // The common case, the next id, in plain numbers: up to 15 digits they are exact, and two
    // BigInts per trade were a visible share of the collector's CPU. Anything else goes below.
    if (mark.id.length <= 15 && last.id.length <= 15 && Number(mark.id) === Number(last.id) + 1) {
      this.lastSeen = mark;
      this.pending = null;
      return null;
    }
    const id = BigInt(mark.id);
    const lastId = BigInt(last.id);
    if (id <= lastId) {
      // A replay (overlapping connections) is older in time too. A smaller id well after the last
      // trade means the venue's ids started over (wrap, reset): compare by time from here on.
      if (mark.eventTime <= last.eventTime + ID_RESET_AFTER_MS) return null;
      return this.closeByTime(mark, last);
    }
    this.lastSeen = mark;
    const brk = this.pending;
    this.pending = null;
    if (id === lastId + 1n) return null;
    if (!contiguous && brk === null) return null;
    const missing = id - lastId - 1n;
    const cause: HoleCause = brk?.cause ?? 'id_gap';
    const detail = brk?.detail ?? `trade id ${String(id)} followed ${String(lastId)}`;
    return this.hole(last.eventTime, mark.eventTime, String(lastId + 1n), String(id - 1n), contiguous ? Number(missing) : null, cause, detail);
  }

  /** A record after a break, with no ids to compare: the hole spans from the break (or the last record) to it. */
  private closeByTime(mark: StreamMark, last: StreamMark | null): HoleFinding | null {
    if (last !== null && mark.eventTime < last.eventTime) return null;
    this.lastSeen = mark;
    const brk = this.pending;
    if (brk === null) return null;
    this.pending = null;
    const from = Math.max(last?.eventTime ?? -Infinity, brk.at - HOLE_TIME_MARGIN_MS);
    return this.hole(from, mark.eventTime, null, null, null, brk.cause, brk.detail);
  }

  private hole(
    fromTime: number,
    toTime: number,
    firstMissingId: string | null,
    lastMissingId: string | null,
    missingCount: number | null,
    cause: HoleCause,
    detail: string,
  ): HoleFinding {
    return { fromTime, toTime: Math.max(fromTime, toTime), firstMissingId, lastMissingId, missingCount, cause, detail };
  }
}
