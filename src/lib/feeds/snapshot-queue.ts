import { sleep as abortableSleep } from '../backoff.js';

export interface SnapshotQueueOptions<T> {
  /** Requests started per second, at most (on top of the RestClient's weight budget). */
  perSecond: number;
  /**
   * Requests in flight at most. Also bounds the burst when the RestClient lifts a Retry-After block:
   * requests waiting inside it would otherwise all go out at that moment.
   */
  maxInFlight?: number;
  fetch(instrument: string, signal: AbortSignal): Promise<T>;
  /** Called once the instrument is no longer in flight, so a failure can ask again at once. */
  settle(instrument: string, outcome: { ok: true; value: T } | { ok: false; error: unknown }): void;
  now?: () => number;
}

const DEFAULT_MAX_IN_FLIGHT = 2;

/**
 * Orderbook snapshot requests of one venue, spread out: after a mass reconnect every book asks at
 * once, and firing them together would burn the venue's rate budget (Binance depth costs 250 weight
 * at 1000 levels) in one second. One request per instrument is queued or in flight at a time.
 */
export class SnapshotQueue<T> {
  /** instrument -> earliest start (epoch ms); insertion order is the order served. */
  private readonly pending = new Map<string, number>();
  private readonly inFlight = new Set<string>();
  private wake: (() => void) | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: SnapshotQueueOptions<T>) {
    this.now = opts.now ?? Date.now;
  }

  get size(): { pending: number; inFlight: number } {
    return { pending: this.pending.size, inFlight: this.inFlight.size };
  }

  /** Ask for a snapshot of `instrument`, not before `notBefore`; no-op while one is queued or in flight. */
  request(instrument: string, notBefore = 0): void {
    if (this.pending.has(instrument) || this.inFlight.has(instrument)) return;
    this.pending.set(instrument, notBefore);
    this.wake?.();
  }

  /** Serves requests until the signal aborts, then waits for those in flight. */
  async run(signal: AbortSignal): Promise<void> {
    const spacingMs = 1000 / this.opts.perSecond;
    const maxInFlight = this.opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    const running = new Set<Promise<void>>();
    while (!signal.aborted) {
      if (running.size >= maxInFlight) {
        // The slot may have been held back (Retry-After) and just gone out with the others: space again.
        await Promise.race(running);
        await abortableSleep(spacingMs, signal);
        continue;
      }
      const now = this.now();
      const next = this.nextDue(now);
      if (next === null) {
        await this.idle(this.earliestStart() - now, signal);
        continue;
      }
      this.pending.delete(next);
      this.inFlight.add(next);
      const task = this.serve(next, signal).finally(() => running.delete(task));
      running.add(task);
      await abortableSleep(spacingMs, signal);
    }
    await Promise.all(running);
  }

  private async serve(instrument: string, signal: AbortSignal): Promise<void> {
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await this.opts.fetch(instrument, signal) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    this.inFlight.delete(instrument);
    if (!signal.aborted) this.opts.settle(instrument, outcome);
  }

  private nextDue(now: number): string | null {
    for (const [instrument, notBefore] of this.pending) if (notBefore <= now) return instrument;
    return null;
  }

  private earliestStart(): number {
    let earliest = Infinity;
    for (const notBefore of this.pending.values()) earliest = Math.min(earliest, notBefore);
    return earliest;
  }

  /** Until a request comes in, the earliest pending one is due, or the signal aborts. */
  private idle(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Number.isFinite(ms) ? Math.max(0, ms) : 2 ** 31 - 1);
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
