import { setTimeout as sleep } from 'node:timers/promises';
import type { Venue } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { readCapture, type CaptureEntry } from '../feeds/raw-capture.js';
import type { Logger } from '../log.js';
import type { VenueSim } from './venue.js';

export interface ReplayStatus {
  file: string;
  speed: number;
  venues: Venue[];
  /** Capture entries replayed so far. */
  entries: number;
  /** WebSocket frames delivered (one entry may reach several clients, or none). */
  framesSent: number;
  done: boolean;
  error: string | null;
}

/** Query parameters that name what a REST body is about; time windows and limits vary between polls. */
const IDENTITY_PARAMS = ['symbol', 'instId', 'instType', 'currency', 'period'];

/**
 * A route as the simulator and a capture both see it: without the `/<venue>` prefix of simulate
 * mode, and with the stream names of a raw Binance route (`/ws/btcusdt@trade`) dropped.
 */
export function routeFamily(path: string, venue: Venue): string {
  const bare = path.startsWith(`/${venue}/`) ? path.slice(venue.length + 1) : path;
  return bare.replace(/\/ws\/.+$/, '/ws');
}

/** What a REST body answers: route family plus the identifying query parameters. */
export function restKey(venue: Venue, path: string, query: URLSearchParams): string {
  const ids = IDENTITY_PARAMS.flatMap((p) => {
    const v = query.get(p);
    return v === null ? [] : [`${p}=${v}`];
  });
  return `${routeFamily(path, venue)}?${ids.join('&')}`;
}

/**
 * Plays a raw capture file back: every `ws` frame goes to the clients connected on the same venue
 * route, paced by the recorded receive times divided by `speed`; each `rest` body becomes the
 * answer for its path once reached. The captured venues send no synthetic data meanwhile, and stay
 * silent after the end until the replay is stopped.
 */
export class Replay {
  private readonly abort = new AbortController();
  private readonly restBodies = new Map<string, string>();
  private readonly status: ReplayStatus;
  private finished: Promise<void> = Promise.resolve();

  constructor(
    file: string,
    speed: number,
    private readonly sims: ReadonlyMap<Venue, VenueSim>,
    private readonly log: Logger,
  ) {
    this.status = { file, speed, venues: [], entries: 0, framesSent: 0, done: false, error: null };
  }

  /** Reads which venues the file holds (a first pass), takes them over, and starts playing. */
  async start(): Promise<void> {
    const venues = new Set<Venue>();
    for await (const e of readCapture(this.status.file)) venues.add(e.venue);
    this.status.venues = [...venues];
    for (const v of venues) {
      const sim = this.sims.get(v);
      if (sim !== undefined) sim.synthetic = false;
    }
    this.finished = this.play().catch((err: unknown) => {
      this.status.error = errorMessage(err);
      this.log.error({ err: this.status.error, file: this.status.file }, 'replay failed');
    });
  }

  /** The captured answer for a REST request, once the replay has reached one. */
  restBody(venue: Venue, path: string, query: URLSearchParams): string | null {
    return this.restBodies.get(`${venue} ${restKey(venue, path, query)}`) ?? null;
  }

  get snapshot(): ReplayStatus {
    return { ...this.status, venues: [...this.status.venues] };
  }

  /** Stops playing and gives the venues back to the synthetic market. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.finished;
    for (const v of this.status.venues) {
      const sim = this.sims.get(v);
      if (sim !== undefined) sim.synthetic = true;
    }
  }

  private async play(): Promise<void> {
    const startedAt = Date.now();
    let firstT: number | null = null;
    const onCorrupt = (line: number, reason: string) => this.log.warn({ file: this.status.file, line, reason }, 'replay skipped a corrupt capture line');
    for await (const entry of readCapture(this.status.file, onCorrupt)) {
      if (this.abort.signal.aborted) return;
      firstT ??= entry.t;
      const wait = startedAt + (entry.t - firstT) / this.status.speed - Date.now();
      if (wait > 0) {
        try {
          await sleep(wait, undefined, { signal: this.abort.signal });
        } catch {
          return;
        }
      }
      this.deliver(entry);
      this.status.entries++;
    }
    this.status.done = true;
    this.log.info({ file: this.status.file, entries: this.status.entries, framesSent: this.status.framesSent }, 'replay finished');
  }

  private deliver(entry: CaptureEntry): void {
    const url = new URL(entry.url);
    if (entry.kind === 'rest') {
      this.restBodies.set(`${entry.venue} ${restKey(entry.venue, url.pathname, url.searchParams)}`, entry.data);
      return;
    }
    const sim = this.sims.get(entry.venue);
    if (sim === undefined) return;
    const family = routeFamily(url.pathname, entry.venue);
    for (const client of sim.hub.all()) {
      if (routeFamily(client.route, entry.venue) === family && sim.hub.send(client, entry.data)) this.status.framesSent++;
    }
  }
}
