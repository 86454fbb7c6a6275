import { Counter, Gauge, type Registry } from 'prom-client';
import type { BackoffPolicy } from '../backoff.js';
import type { DataType } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { MalformedFrameError, type VenueAdapter } from '../exchanges/types.js';
import type { Logger } from '../log.js';
import type { MarketRecord } from '../records.js';
import { freshness, staleThresholdMs, type Freshness } from './freshness.js';
import { WsFeed, type FeedState } from './ws-feed.js';

export interface CollectorMetrics {
  messages: Counter<'venue' | 'data_type'>;
  errors: Counter<'venue' | 'data_type' | 'code'>;
  lastSuccess: Gauge<'venue' | 'data_type'>;
  reconnects: Counter<'venue'>;
}

export function createCollectorMetrics(registry: Registry): CollectorMetrics {
  const registers = [registry];
  return {
    messages: new Counter({ name: 'mprism_collector_messages_total', help: 'Records normalized from venue frames', labelNames: ['venue', 'data_type'], registers }),
    errors: new Counter({ name: 'mprism_collector_errors_total', help: 'Frames rejected, by reason', labelNames: ['venue', 'data_type', 'code'], registers }),
    lastSuccess: new Gauge({
      name: 'mprism_collector_last_success_timestamp_seconds',
      help: 'Receive time of the newest record, epoch seconds',
      labelNames: ['venue', 'data_type'],
      registers,
    }),
    reconnects: new Counter({ name: 'mprism_collector_reconnects_total', help: 'WebSocket connections lost or replaced', labelNames: ['venue'], registers }),
  };
}

/** Where records go; the bus Publisher fits. publish() resolves once the record is in flight. */
export interface RecordSink {
  publish(record: MarketRecord): Promise<void>;
}

export interface VenueCollectorOptions {
  adapter: VenueAdapter;
  baseUrl: string;
  symbols: readonly string[];
  dataTypes: readonly DataType[];
  sink: RecordSink;
  metrics: CollectorMetrics;
  log: Logger;
  staleAfterMs: number;
  reconnect: BackoffPolicy;
  /** Before its first record a stream is `starting`, not `stale`, for this long. */
  startupGraceMs?: number;
  now?: () => number;
}

export interface StreamHealth {
  venue: string;
  dataType: DataType;
  status: Freshness;
  lastSuccessAt: string | null;
  ageSeconds: number | null;
  connections: { id: string; state: FeedState; connects: number; reconnects: number; lastDisconnectReason: string | null }[];
}

/** Records waiting for the sink beyond this pause the sockets; below the low mark they resume. */
const QUEUE_HIGH_WATER = 20_000;
const QUEUE_LOW_WATER = 5_000;
const MALFORMED_LOG_INTERVAL_MS = 10_000;
/** An open connection this long resets the reconnect backoff. */
const STABLE_CONNECTION_MS = 60_000;
const DEFAULT_STARTUP_GRACE_MS = 30_000;

/**
 * One venue: its WebSocket connections, frame normalization, and a bounded queue into the sink.
 * Frames are normalized synchronously in arrival order; publishing is pipelined by the sink.
 */
export class VenueCollector {
  private readonly feeds: WsFeed[];
  private readonly lastSuccess = new Map<DataType, number>();
  private queue: MarketRecord[] = [];
  private pumping: Promise<void> | null = null;
  private paused = false;
  private readonly startedAt: number;
  private readonly now: () => number;
  private malformedSinceLog = 0;
  private lastMalformedLogAt = -Infinity;

  constructor(private readonly opts: VenueCollectorOptions) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    const venue = opts.adapter.venue;
    this.feeds = opts.adapter.connections(opts.baseUrl, opts.symbols, opts.dataTypes).map((spec) => {
      const feed: WsFeed = new WsFeed({
        spec,
        staleAfterMs: opts.staleAfterMs,
        reconnect: opts.reconnect,
        stableAfterMs: STABLE_CONNECTION_MS,
        log: opts.log,
        now: this.now,
        onFrame: (frame, receiveTime) => this.handleFrame(feed, frame, receiveTime),
        onReconnect: () => opts.metrics.reconnects.inc({ venue }),
      });
      return feed;
    });
  }

  /** Runs the connections until the signal aborts, then hands every queued record to the sink. */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all(this.feeds.map((f) => f.run(signal)));
    await this.drain();
  }

  /** Resolves when every record received so far has been handed to the sink. */
  async drain(): Promise<void> {
    while (this.pumping !== null) await this.pumping;
  }

  health(): StreamHealth[] {
    const now = this.now();
    const connections = this.feeds.map((f) => {
      const s = f.stats;
      return { id: f.id, state: s.state, connects: s.connects, reconnects: s.reconnects, lastDisconnectReason: s.lastDisconnectReason };
    });
    return this.opts.dataTypes.map((dataType) => {
      const last = this.lastSuccess.get(dataType) ?? null;
      return {
        venue: this.opts.adapter.venue,
        dataType,
        status: freshness({ now, startedAt: this.startedAt, lastSuccessAt: last, thresholdMs: staleThresholdMs(dataType), graceMs: this.opts.startupGraceMs ?? DEFAULT_STARTUP_GRACE_MS }),
        lastSuccessAt: last === null ? null : new Date(last).toISOString(),
        ageSeconds: last === null ? null : Math.max(0, (now - last) / 1000),
        connections,
      };
    });
  }

  private handleFrame(feed: WsFeed, frame: string, receiveTime: number): void {
    const { adapter, metrics } = this.opts;
    const venue = adapter.venue;
    let produced = 0;
    try {
      for (const record of adapter.normalize(frame, receiveTime)) {
        produced++;
        this.queue.push(record);
        metrics.messages.inc({ venue, data_type: record.dataType });
        if (this.lastSuccess.get(record.dataType) !== receiveTime) {
          this.lastSuccess.set(record.dataType, receiveTime);
          metrics.lastSuccess.set({ venue, data_type: record.dataType }, receiveTime / 1000);
        }
      }
    } catch (err) {
      this.countBadFrame(err, frame);
    }
    if (produced === 0) {
      const action = adapter.control(frame);
      if (action.kind === 'reconnect') {
        this.opts.log.warn({ venue, reason: action.reason }, 'venue asked for a new connection');
        feed.recycle(action.reason);
      }
      return;
    }
    if (!this.paused && this.queue.length >= QUEUE_HIGH_WATER) {
      this.paused = true;
      for (const f of this.feeds) f.pause();
    }
    this.pumping ??= this.pump();
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

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        for (let i = 0; i < batch.length; i++) {
          await this.opts.sink.publish(batch[i] as MarketRecord);
          if (this.paused && batch.length - i + this.queue.length < QUEUE_LOW_WATER) {
            this.paused = false;
            for (const f of this.feeds) f.resume();
          }
        }
      }
    } finally {
      this.pumping = null;
    }
  }
}
