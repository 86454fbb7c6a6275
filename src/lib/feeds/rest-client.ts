import { sleep as abortableSleep } from '../backoff.js';
import type { Venue } from '../config/schema.js';
import { MprismError } from '../errors.js';
import type { RateLimitPolicy, RestRequest } from '../exchanges/types.js';

/** A 2xx answer. */
export interface RestResponse {
  /** The URL requested (a poll's URL may differ per read: record this one). */
  url: string;
  status: number;
  body: string;
  headers: Headers;
  /** When the body had been read (epoch ms). */
  receiveTime: number;
}

/** The venue answered with a non-2xx status. */
export class RestError extends MprismError {
  constructor(
    readonly url: string,
    readonly status: number,
    /** 429/418 only: how long every request of the venue is held back. */
    readonly retryAfterMs: number | null,
    readonly body: string,
  ) {
    super(`GET ${url}: HTTP ${status}${retryAfterMs === null ? '' : ` (retry after ${retryAfterMs} ms)`}: ${body.slice(0, 200)}`);
  }
}

/** No HTTP answer at all: connection refused or reset, DNS failure, or no answer within the timeout. */
export class RestNetworkError extends MprismError {
  constructor(
    readonly url: string,
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    const why = timedOut ? 'timed out' : options?.cause instanceof Error ? options.cause.message : 'network error';
    super(`GET ${url}: ${why}`, options);
  }
}

/** Callbacks for metrics; all optional. */
export interface RestClientHooks {
  /** Every request that ended: its HTTP status as text, or `network` / `timeout` when no answer came. */
  request?(outcome: string): void;
  /** A request was held back this long for rate budget or a Retry-After block before it was sent. */
  waited?(ms: number): void;
  /** The venue answered 429 (or Binance 418): all its requests are held back for retryAfterMs. */
  rateLimited?(status: number, retryAfterMs: number): void;
}

export interface RestClock {
  now(): number;
  /** Resolves after ms, or early (without throwing) when the signal aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface RestClientOptions {
  venue: Venue;
  policy: RateLimitPolicy;
  /** Share of the venue's limit this client allows itself: other tools may share the IP. */
  budgetShare?: number;
  timeoutMs?: number;
  /** Hold-back after a 429 that carries no usable Retry-After. */
  defaultRetryAfterMs?: number;
  hooks?: RestClientHooks;
  clock?: RestClock;
}

const DEFAULT_BUDGET_SHARE = 0.8;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_AFTER_MS = 30_000;
const realClock: RestClock = { now: () => Date.now(), sleep: abortableSleep };

/**
 * Retry-After as milliseconds from `now`: delta-seconds or an HTTP date (RFC 9110). null when absent
 * or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - now);
}

interface Spend {
  at: number;
  weight: number;
}

/**
 * Sliding-window weight budget. Requests are admitted one at a time in arrival order, so a burst
 * (every book resyncing after a mass reconnect) is spread over the window instead of tripping the
 * venue's limit.
 */
export class WeightBudget {
  private spent: Spend[] = [];
  private blockedUntil = 0;

  constructor(
    readonly capacity: number,
    readonly windowMs: number,
  ) {}

  /** Weight spent within the window ending at `now`. */
  used(now: number): number {
    this.expire(now);
    return this.spent.reduce((sum, s) => sum + s.weight, 0);
  }

  /** Milliseconds until `weight` fits (0: now). A request heavier than the whole budget goes alone. */
  waitFor(weight: number, now: number): number {
    if (now < this.blockedUntil) return this.blockedUntil - now;
    const need = Math.min(weight, this.capacity);
    let used = this.used(now);
    let wait = 0;
    for (const s of this.spent) {
      if (used + need <= this.capacity) break;
      used -= s.weight;
      wait = s.at + this.windowMs - now;
    }
    return wait;
  }

  spend(weight: number, now: number): void {
    this.spent.push({ at: now, weight });
  }

  /**
   * The venue reported more weight used than we counted (other processes on the IP, or our own
   * restarts): count the difference as spent now.
   */
  sync(reportedUsed: number, now: number): void {
    const missing = reportedUsed - this.used(now);
    if (missing > 0) this.spend(missing, now);
  }

  block(until: number): void {
    this.blockedUntil = Math.max(this.blockedUntil, until);
  }

  private expire(now: number): void {
    while (this.spent.length > 0 && (this.spent[0] as Spend).at + this.windowMs <= now) this.spent.shift();
  }
}

function isRateLimitStatus(status: number): boolean {
  // Binance answers 418 once an IP keeps going after 429s: an IP ban with a Retry-After.
  return status === 429 || status === 418;
}

/** HTTP GETs against one venue, kept within its rate limit. */
export class RestClient {
  private readonly budget: WeightBudget;
  private readonly clock: RestClock;
  private readonly hooks: RestClientHooks;
  private readonly timeoutMs: number;
  private readonly defaultRetryAfterMs: number;
  /** Resolves when the request ahead in line has been admitted (or gave up): admission is FIFO. */
  private queueTail: Promise<void> = Promise.resolve();

  constructor(private readonly options: RestClientOptions) {
    const share = options.budgetShare ?? DEFAULT_BUDGET_SHARE;
    this.budget = new WeightBudget(Math.max(1, Math.floor(options.policy.weightPerWindow * share)), options.policy.windowMs);
    this.clock = options.clock ?? realClock;
    this.hooks = options.hooks ?? {};
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.defaultRetryAfterMs = options.defaultRetryAfterMs ?? DEFAULT_RETRY_AFTER_MS;
  }

  get venue(): Venue {
    return this.options.venue;
  }

  /**
   * GET once (no retries: 5xx and network errors are the caller's to retry). Resolves with a 2xx
   * response; rejects with RestError (non-2xx), RestNetworkError, or the signal's reason on abort.
   */
  async get(req: RestRequest, signal: AbortSignal): Promise<RestResponse> {
    await this.admit(req.weight, signal);
    // Not AbortSignal.any([signal, timeout]): Node keeps every composite of the caller's long-lived
    // signal reachable from it (nodejs/node#55351), one per request for the life of the daemon.
    const request = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      request.abort();
    }, this.timeoutMs);
    const onAbort = () => request.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    let res: Response;
    let body: string;
    try {
      res = await fetch(req.url, { signal: request.signal, headers: req.headers });
      body = await res.text();
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      this.hooks.request?.(timedOut ? 'timeout' : 'network');
      throw new RestNetworkError(req.url, timedOut, { cause: err });
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
    const now = this.clock.now();
    this.hooks.request?.(String(res.status));
    this.syncUsedWeight(res.headers, now);
    if (isRateLimitStatus(res.status)) {
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), now) ?? this.defaultRetryAfterMs;
      this.budget.block(now + retryAfterMs);
      this.hooks.rateLimited?.(res.status, retryAfterMs);
      throw new RestError(req.url, res.status, retryAfterMs, body);
    }
    if (res.status < 200 || res.status > 299) throw new RestError(req.url, res.status, null, body);
    return { url: req.url, status: res.status, body, headers: res.headers, receiveTime: now };
  }

  private syncUsedWeight(headers: Headers, now: number): void {
    const name = this.options.policy.usedWeightHeader;
    if (name === null) return;
    const reported = Number(headers.get(name));
    // The header counts all weight used from this IP, ours included.
    if (headers.has(name) && Number.isFinite(reported)) this.budget.sync(reported, now);
  }

  /** Waits for this request's turn, then for budget, then spends its weight. */
  private async admit(weight: number, signal: AbortSignal): Promise<void> {
    const arrivedAt = this.clock.now();
    const ahead = this.queueTail;
    let release!: () => void;
    this.queueTail = new Promise((resolve) => (release = resolve));
    try {
      await ahead;
      for (;;) {
        if (signal.aborted) throw signal.reason;
        const now = this.clock.now();
        const wait = this.budget.waitFor(weight, now);
        if (wait === 0) {
          this.budget.spend(weight, now);
          if (now > arrivedAt) this.hooks.waited?.(now - arrivedAt);
          return;
        }
        await this.clock.sleep(wait, signal);
      }
    } finally {
      release();
    }
  }
}
