import { backoffDelay, sleep as abortableSleep, type BackoffPolicy } from '../backoff.js';
import { errorMessage } from '../errors.js';
import { MalformedFrameError, type RestPoll } from '../exchanges/types.js';
import type { Logger } from '../log.js';
import type { MarketRecord } from '../records.js';
import { RestError, RestNetworkError, type RestClient, type RestResponse } from './rest-client.js';

/** How one run of a poll ended; failures carry the `code` label of mprism_collector_errors_total. */
export type PollOutcome =
  | { ok: true; poll: RestPoll; at: number; records: number }
  | { ok: false; poll: RestPoll; at: number; code: string; error: unknown };

export interface RestPollerOptions {
  client: RestClient;
  polls: readonly RestPoll[];
  log: Logger;
  /** The records of one successful run, in body order. */
  onRecords(records: MarketRecord[], poll: RestPoll): void;
  /** Every 2xx response, before it is parsed (raw capture). */
  onResponse?(poll: RestPoll, response: RestResponse): void;
  /** Every run, for health (last success per venue x data type) and error metrics. */
  onOutcome?(outcome: PollOutcome): void;
  /** First runs are spread evenly over this long (capped at each poll's interval). */
  startSpreadMs?: number;
  /** Retry delay after failures; never longer than the poll's interval. */
  retry?: BackoffPolicy;
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

const DEFAULT_START_SPREAD_MS = 3000;
const DEFAULT_RETRY: BackoffPolicy = { initialMs: 1000, maxMs: 60_000, jitter: 0.2 };

/** The error-metric code of a failed run: the MalformedFrameError reason, `http_<status>`, or `network`. */
export function pollErrorCode(err: unknown): string {
  if (err instanceof MalformedFrameError) return err.reason;
  if (err instanceof RestError) return `http_${err.status}`;
  if (err instanceof RestNetworkError) return 'network';
  return 'internal';
}

/** Delay before the first run of poll `index` of `count`: spread so they do not all fire at once. */
export function firstRunDelay(index: number, count: number, spreadMs: number, intervalMs: number): number {
  return Math.floor((Math.min(spreadMs, intervalMs) * index) / Math.max(1, count));
}

/** Delay before the next run: the interval after a success, a capped backoff after failures. */
export function nextRunDelay(consecutiveFailures: number, intervalMs: number, retry: BackoffPolicy, random: () => number = Math.random): number {
  if (consecutiveFailures === 0) return intervalMs;
  return Math.min(intervalMs, backoffDelay(consecutiveFailures - 1, retry, random));
}

/** Runs REST polls at their intervals until aborted; failures are reported, never thrown. */
export class RestPoller {
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly retry: BackoffPolicy;

  constructor(private readonly options: RestPollerOptions) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? abortableSleep;
    this.retry = options.retry ?? DEFAULT_RETRY;
  }

  /** Resolves once the signal aborts and every in-flight run has ended. */
  async run(signal: AbortSignal): Promise<void> {
    const { polls } = this.options;
    const spread = this.options.startSpreadMs ?? DEFAULT_START_SPREAD_MS;
    await Promise.all(polls.map((poll, i) => this.loop(poll, firstRunDelay(i, polls.length, spread, poll.intervalMs), signal)));
  }

  private async loop(poll: RestPoll, firstDelayMs: number, signal: AbortSignal): Promise<void> {
    await this.sleep(firstDelayMs, signal);
    let failures = 0;
    while (!signal.aborted) {
      const startedAt = this.now();
      const ok = await this.runOnce(poll, signal);
      if (signal.aborted) return;
      failures = ok ? 0 : failures + 1;
      // Fixed rate: the interval counts from the start of the run, so slow answers do not drift it.
      const delay = nextRunDelay(failures, poll.intervalMs, this.retry) - (this.now() - startedAt);
      await this.sleep(Math.max(0, delay), signal);
    }
  }

  /** One request, parse and hand-off; true on success. */
  private async runOnce(poll: RestPoll, signal: AbortSignal): Promise<boolean> {
    const { client, log } = this.options;
    try {
      // poll.url may be computed per read (a time window ending now), so read it once per run.
      const response = await client.get({ url: poll.url, weight: poll.weight }, signal);
      this.options.onResponse?.(poll, response);
      const records = poll.parse(response.body, response.receiveTime);
      this.options.onRecords(records, poll);
      this.options.onOutcome?.({ ok: true, poll, at: response.receiveTime, records: records.length });
      return true;
    } catch (error) {
      if (signal.aborted) return false;
      const code = pollErrorCode(error);
      log.warn({ venue: client.venue, poll: poll.id, code, err: errorMessage(error) }, 'REST poll failed');
      this.options.onOutcome?.({ ok: false, poll, at: this.now(), code, error });
      return false;
    }
  }
}
