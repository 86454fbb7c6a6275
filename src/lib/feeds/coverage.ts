import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { DataType, Venue } from '../config/schema.js';
import { writeFileDurably } from '../durable-file.js';
import { errorMessage } from '../errors.js';
import type { MarketType, StreamHoleRecord } from '../records.js';
import { StreamContinuity, type ContinuityPolicy, type HoleFinding, type StreamBreak, type StreamMark } from './continuity.js';

/** What the file keeps of one stream: enough for the next start to tell the hole a downtime left. */
export interface StreamCoverageState {
  /** Newest record of the stream that JetStream acknowledged (not merely received). */
  last: StreamMark | null;
  /** A break no record has closed yet. */
  broken: StreamBreak | null;
  /**
   * Until when the stream was being received with everything received also stored: a kill -9
   * right after this loses nothing from before it. Local epoch ms.
   */
  aliveAt: number;
}

/** What the file keeps of a stream, with the identity its hole records need. */
export interface PersistedStream extends StreamCoverageState {
  identity: StreamIdentity;
}

interface CoverageFileContent {
  version: 1;
  writtenAt: number;
  streams: PersistedStream[];
}

/** The collector's durable record of what it covered, under MPRISM_HOME. */
export function coverageFile(home: string): string {
  return join(home, 'data', 'collector', 'coverage.json');
}

export function streamId(venue: Venue, dataType: DataType, instrument: string): string {
  return `${venue}/${dataType}/${instrument}`;
}

export interface CoverageReadResult {
  streams: PersistedStream[];
  /** Why the file could not be used (it was moved aside); null when it was read or did not exist. */
  problem: string | null;
}

const isMark = (v: unknown): v is StreamMark =>
  typeof v === 'object' && v !== null && Number.isFinite((v as StreamMark).eventTime) && ((v as StreamMark).id === null || typeof (v as StreamMark).id === 'string');

const isBreak = (v: unknown): v is StreamBreak =>
  typeof v === 'object' && v !== null && typeof (v as StreamBreak).cause === 'string' && Number.isFinite((v as StreamBreak).at) && typeof (v as StreamBreak).detail === 'string';

const isIdentity = (v: unknown): v is StreamIdentity => {
  if (typeof v !== 'object' || v === null) return false;
  const i = v as Record<string, unknown>;
  return ['venue', 'marketType', 'symbol', 'instrument', 'dataType'].every((k) => typeof i[k] === 'string');
};

function parseStream(v: unknown): PersistedStream | null {
  if (typeof v !== 'object' || v === null) return null;
  const s = v as Record<string, unknown>;
  if (!isIdentity(s.identity) || !(s.last === null || isMark(s.last)) || !(s.broken === null || isBreak(s.broken)) || !Number.isFinite(s.aliveAt)) return null;
  return { identity: s.identity, last: s.last, broken: s.broken, aliveAt: s.aliveAt as number };
}

/**
 * Reads the coverage file. A missing file is a first start (no holes to tell). A corrupt one is
 * moved aside (`.corrupt-<ms>`) so it is kept for a post-mortem and not read again; the caller
 * reports the problem: the downtime before this start cannot be bounded from it.
 */
export function readCoverage(file: string, now: number): CoverageReadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { streams: [], problem: null };
    return { streams: [], problem: `cannot read ${file}: ${errorMessage(err)}` };
  }
  const streams: PersistedStream[] = [];
  try {
    const content = JSON.parse(text) as Partial<CoverageFileContent>;
    if (content.version !== 1 || !Array.isArray(content.streams)) throw new Error('expected {"version":1,"streams":[...]}');
    content.streams.forEach((raw: unknown, i) => {
      const stream = parseStream(raw);
      if (stream === null) throw new Error(`streams[${i}] is not {identity, last, broken, aliveAt}`);
      streams.push(stream);
    });
  } catch (err) {
    try {
      renameSync(file, `${file}.corrupt-${now}`);
    } catch {
      // Reported either way; the next write replaces it.
    }
    return { streams: [], problem: `${file} is corrupt (${errorMessage(err)}); moved aside` };
  }
  return { streams, problem: null };
}

export function writeCoverage(file: string, streams: readonly PersistedStream[], now: number): void {
  const content: CoverageFileContent = { version: 1, writtenAt: now, streams: [...streams] };
  writeFileDurably(file, JSON.stringify(content) + '\n');
}

/** Detail of the break a start finds for each stream the previous run covered. */
export const COLLECTOR_DOWN_DETAIL = 'collector was not running';

interface Pending {
  /** null: a hole record, which holds the mark back until stored but does not move it. */
  mark: StreamMark | null;
  receiveTime: number;
  stored: boolean;
}

/** Identity of a stream as its records carry it. */
export interface StreamIdentity {
  venue: Venue;
  marketType: MarketType;
  symbol: string;
  instrument: string;
  dataType: DataType;
}

/**
 * One stream's coverage: the continuity judgement on received records, and the newest record
 * JetStream acknowledged in publish order (a record acked while an older one is still in flight
 * does not advance it: a crash would lose the older one).
 */
export class StreamCoverage {
  readonly continuity: StreamContinuity;
  private stored: StreamMark | null;
  private readonly pending: Pending[] = [];
  private head = 0;

  constructor(
    readonly identity: StreamIdentity,
    policy: ContinuityPolicy,
    resume: StreamCoverageState | null,
  ) {
    this.stored = resume?.last ?? null;
    this.continuity = new StreamContinuity(
      policy,
      resume === null ? null : { last: resume.last, broken: resume.broken ?? { cause: 'collector_down', at: resume.aliveAt, detail: COLLECTOR_DOWN_DETAIL } },
    );
  }

  /** A record handed to the sink; returns what to call once JetStream has stored it. */
  published(mark: StreamMark, receiveTime: number): () => void {
    return this.enqueue(mark, receiveTime);
  }

  /**
   * A hole record of this stream handed to the sink: until it is stored, a crash must leave the
   * stored mark before the hole, so that the next start finds (and records) it again.
   */
  publishedHole(at: number): () => void {
    return this.enqueue(null, at);
  }

  private enqueue(mark: StreamMark | null, receiveTime: number): () => void {
    const entry: Pending = { mark, receiveTime, stored: false };
    this.pending.push(entry);
    return () => {
      entry.stored = true;
      this.advance();
    };
  }

  /** What the file keeps of this stream now. */
  state(now: number): StreamCoverageState {
    const oldest = this.head < this.pending.length ? (this.pending[this.head] as Pending).receiveTime : Infinity;
    const broken = this.continuity.broken;
    return { last: this.stored, broken, aliveAt: broken === null ? Math.min(now, oldest) : Math.min(broken.at, oldest) };
  }

  private advance(): void {
    while (this.head < this.pending.length && (this.pending[this.head] as Pending).stored) {
      const { mark } = this.pending[this.head] as Pending;
      if (mark !== null && (this.stored === null || isNewer(mark, this.stored))) this.stored = mark;
      this.head++;
    }
    // Compact now and then instead of shifting on every ack (amortised O(1)); the floor is low
    // because a collector has hundreds of streams, each holding its acked entries until then.
    if (this.head >= 64 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** Trades compare by id (several share a millisecond), everything else by event time. */
function isNewer(a: StreamMark, b: StreamMark): boolean {
  if (a.id !== null && b.id !== null && /^\d+$/.test(a.id) && /^\d+$/.test(b.id)) {
    // Up to 15 digits a Number is exact: no BigInts for every acknowledged trade.
    return a.id.length <= 15 && b.id.length <= 15 ? Number(a.id) > Number(b.id) : BigInt(a.id) > BigInt(b.id);
  }
  return a.eventTime >= b.eventTime;
}

/** A finding as the record the collector publishes: the hole's first row, state `open`. */
export function holeRecord(stream: StreamIdentity, finding: HoleFinding, now: number): StreamHoleRecord {
  return {
    dataType: 'stream_hole',
    venue: stream.venue,
    marketType: stream.marketType,
    symbol: stream.symbol,
    instrument: stream.instrument,
    eventTime: now,
    receiveTime: now,
    holeDataType: stream.dataType,
    holeId: holeIdOf(stream, finding),
    fromTime: finding.fromTime,
    toTime: finding.toTime,
    firstMissingId: finding.firstMissingId,
    lastMissingId: finding.lastMissingId,
    missingCount: finding.missingCount,
    cause: finding.cause,
    state: 'open',
    detail: finding.detail,
  };
}

/** Stable across state rows and re-detections of the same interval. */
export function holeIdOf(stream: Pick<StreamIdentity, 'venue' | 'dataType' | 'instrument'>, finding: Pick<HoleFinding, 'fromTime' | 'firstMissingId'>): string {
  return `${streamId(stream.venue, stream.dataType, stream.instrument)}/${finding.fromTime}${finding.firstMissingId === null ? '' : `/${finding.firstMissingId}`}`;
}
