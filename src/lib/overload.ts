import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/**
 * Overload, named by the stage that cannot keep up. Pure verdicts over what each daemon measures;
 * the daemons put the verdict in their /health, and `mprism health` lists it as a problem.
 *   collector: its own event loop is behind (parsing and book work exceed its core);
 *   publish:   records wait for JetStream (the collector's queue is full, so its sockets are paused);
 *   storage:   rows wait for ClickHouse (every batch closes full, for a while).
 */
export type OverloadStage = 'collector' | 'publish' | 'storage';

/** Event-loop delay (p99 over a window) past which a daemon counts as overloaded. */
export const EVENT_LOOP_LAG_LIMIT_MS = 200;
/** Storage whose batches have all closed full for this long is behind, not merely busy. */
export const STORAGE_BEHIND_MS = 10_000;

export function collectorOverload(o: { eventLoopLagMs: number; publishBackedUp: boolean }): OverloadStage | null {
  if (o.eventLoopLagMs > EVENT_LOOP_LAG_LIMIT_MS) return 'collector';
  if (o.publishBackedUp) return 'publish';
  return null;
}

/** fullBatchesSince: when storage's batches began closing full without a break (null: the last one was not full). */
export function storageOverload(o: { eventLoopLagMs: number; fullBatchesSince: number | null; now: number }): OverloadStage | null {
  if (o.eventLoopLagMs > EVENT_LOOP_LAG_LIMIT_MS) return 'storage';
  if (o.fullBatchesSince !== null && o.now - o.fullBatchesSince >= STORAGE_BEHIND_MS) return 'storage';
  return null;
}

/** How often the event loop's delay is sampled (monitorEventLoopDelay's resolution), ms. */
const LAG_SAMPLE_MS = 20;

/**
 * The event loop's delay, a percentile (p99 unless asked otherwise) over windows of windowMs: the
 * larger of the last whole window and the current one, so a stall shows at once and stays visible
 * for a window after it ends.
 */
export class EventLoopLag {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: LAG_SAMPLE_MS });
  private lastWindowMs = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    windowMs = 5000,
    private readonly percentile = 99,
  ) {
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.lastWindowMs = this.currentMs();
      this.histogram.reset();
    }, windowMs);
    this.timer.unref();
  }

  /** The delay at the percentile this was made for (p99 by default), ms. */
  delayMs(): number {
    return Math.max(this.lastWindowMs, this.currentMs());
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }

  private currentMs(): number {
    // Empty until the first sample: percentile() is then NaN or 0 depending on the Node version.
    const p = this.histogram.count > 0 ? this.histogram.percentile(this.percentile) / 1e6 : 0;
    // The histogram holds the time between its timer's runs, the sampling interval included (an
    // idle loop reads 20 ms): the delay is what exceeds it.
    return Number.isFinite(p) ? Math.max(0, p - LAG_SAMPLE_MS) : 0;
  }
}
