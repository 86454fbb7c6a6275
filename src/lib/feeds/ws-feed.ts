import WebSocket from 'ws';
import { backoffDelay, sleep, type BackoffPolicy } from '../backoff.js';
import { errorMessage } from '../errors.js';
import type { WsConnectionSpec } from '../exchanges/types.js';
import type { Logger } from '../log.js';

export type FeedState = 'idle' | 'connecting' | 'open' | 'backoff' | 'stopped';

export interface FeedStats {
  state: FeedState;
  /** Connections that reached `open`. */
  connects: number;
  /** Connections lost or replaced while the feed was meant to run. */
  reconnects: number;
  frames: number;
  lastFrameAt: number | null;
  connectedAt: number | null;
  lastDisconnectReason: string | null;
}

export interface WsFeedOptions {
  spec: WsConnectionSpec;
  /** No text frame for this long: the connection is presumed dead and replaced. */
  staleAfterMs: number;
  reconnect: BackoffPolicy;
  /** A connection that stayed open this long resets the backoff to its first step. */
  stableAfterMs: number;
  log: Logger;
  /** Called synchronously for every text frame, in arrival order. */
  onFrame(frame: string, receiveTime: number): void;
  /** Called once per lost or replaced connection that will be re-established. */
  onReconnect?(reason: string): void;
  now?: () => number;
  handshakeTimeoutMs?: number;
}

export type WatchdogVerdict = { replace: false } | { replace: true; reason: 'stale' | 'max_age' };

/**
 * Whether an open connection must be replaced. Time spent paused by our own backpressure does not
 * count as silence: the venue may well be sending, we are just not reading.
 */
export function watchdogVerdict(input: {
  now: number;
  openedAt: number;
  lastActivityAt: number;
  paused: boolean;
  staleAfterMs: number;
  maxConnectionAgeMs: number;
}): WatchdogVerdict {
  if (input.now - input.openedAt >= input.maxConnectionAgeMs) return { replace: true, reason: 'max_age' };
  if (!input.paused && input.now - input.lastActivityAt >= input.staleAfterMs) return { replace: true, reason: 'stale' };
  return { replace: false };
}

/**
 * Backoff attempt number for the next reconnect: back to 0 after a stable connection, so one drop
 * after a day of service reconnects at once instead of inheriting yesterday's long delay.
 */
export function nextAttempt(previous: number, openDurationMs: number | null, stableAfterMs: number): number {
  if (openDurationMs !== null && openDurationMs >= stableAfterMs) return 0;
  return previous + 1;
}

const CLOSE_GRACE_MS = 1000;

/** One WebSocket connection kept alive: reconnects with backoff, replaces stale or old connections. */
export class WsFeed {
  private state: FeedState = 'idle';
  private ws: WebSocket | null = null;
  private paused = false;
  private connects = 0;
  private reconnects = 0;
  private frames = 0;
  private lastFrameAt: number | null = null;
  private lastActivityAt = 0;
  private connectedAt: number | null = null;
  private lastDisconnectReason: string | null = null;
  /** Set by recycle() or the watchdog so the close handler reports why we closed it. */
  private closingReason: string | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: WsFeedOptions) {
    this.now = opts.now ?? Date.now;
  }

  get id(): string {
    return this.opts.spec.id;
  }

  get stats(): FeedStats {
    return {
      state: this.state,
      connects: this.connects,
      reconnects: this.reconnects,
      frames: this.frames,
      lastFrameAt: this.lastFrameAt,
      connectedAt: this.connectedAt,
      lastDisconnectReason: this.lastDisconnectReason,
    };
  }

  /** Runs until the signal aborts; never rejects on network errors. */
  async run(signal: AbortSignal): Promise<void> {
    let attempt = -1;
    while (!signal.aborted) {
      const outcome = await this.connectOnce(signal);
      if (signal.aborted) break;
      this.reconnects++;
      this.lastDisconnectReason = outcome.reason;
      this.opts.onReconnect?.(outcome.reason);
      attempt = nextAttempt(attempt, outcome.openDurationMs, this.opts.stableAfterMs);
      // A connection we replaced on purpose (stale, max age, venue notice) reconnects at once.
      const delay = outcome.deliberate ? 0 : backoffDelay(attempt, { jitter: 0.3, ...this.opts.reconnect });
      this.opts.log.warn({ feed: this.opts.spec.id, reason: outcome.reason, delayMs: delay }, 'ws connection lost, reconnecting');
      this.state = 'backoff';
      await sleep(delay, signal);
    }
    this.state = 'stopped';
  }

  /** Replace the current connection now (e.g. the venue announced a shutdown). */
  recycle(reason: string): void {
    const ws = this.ws;
    if (ws === null) return;
    this.closingReason = reason;
    ws.terminate();
  }

  /** Stop reading frames (TCP backpressure reaches the venue) until resume(). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.ws?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastActivityAt = this.now();
    this.ws?.resume();
  }

  private connectOnce(signal: AbortSignal): Promise<{ reason: string; openDurationMs: number | null; deliberate: boolean }> {
    const { spec, log } = this.opts;
    this.state = 'connecting';
    this.closingReason = null;
    return new Promise((resolve) => {
      const ws = new WebSocket(spec.url, { handshakeTimeout: this.opts.handshakeTimeoutMs ?? 10_000, perMessageDeflate: false });
      this.ws = ws;
      let openedAt: number | null = null;
      let lastError: string | null = null;
      const checkEveryMs = Math.max(50, Math.min(1000, this.opts.staleAfterMs / 4));
      let watchdog: NodeJS.Timeout | null = null;

      const onAbort = () => {
        this.closingReason = 'shutdown';
        ws.close(1000, 'shutdown');
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      };
      signal.addEventListener('abort', onAbort, { once: true });

      ws.on('open', () => {
        openedAt = this.now();
        this.lastActivityAt = openedAt;
        this.connectedAt = openedAt;
        this.connects++;
        this.state = 'open';
        if (this.paused) ws.pause();
        for (const msg of spec.subscribeMessages) ws.send(msg);
        log.info({ feed: spec.id, url: spec.url }, 'ws connected');
        watchdog = setInterval(() => {
          const verdict = watchdogVerdict({
            now: this.now(),
            openedAt: openedAt ?? this.now(),
            lastActivityAt: this.lastActivityAt,
            paused: this.paused,
            staleAfterMs: this.opts.staleAfterMs,
            maxConnectionAgeMs: spec.maxConnectionAgeMs,
          });
          if (verdict.replace) {
            this.closingReason = verdict.reason;
            ws.terminate();
          }
        }, checkEveryMs);
      });

      // Venues ping idle connections (Binance every 20 s; ws answers with pong): a ping proves the
      // connection alive, so a quiet symbol is not mistaken for a dead socket. A subscription that
      // stays silent while pings flow is reported stale by data age in health, not reconnected.
      ws.on('ping', () => {
        this.lastActivityAt = this.now();
      });

      ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
        if (isBinary) return;
        const receiveTime = this.now();
        this.lastActivityAt = receiveTime;
        this.lastFrameAt = receiveTime;
        this.frames++;
        const text = Buffer.isBuffer(data)
          ? data.toString('utf8')
          : Array.isArray(data)
            ? Buffer.concat(data).toString('utf8')
            : Buffer.from(data).toString('utf8');
        this.opts.onFrame(text, receiveTime);
      });

      ws.on('error', (err: Error) => {
        lastError = errorMessage(err);
      });

      ws.on('close', (code: number, reasonBuf: Buffer) => {
        if (watchdog !== null) clearInterval(watchdog);
        signal.removeEventListener('abort', onAbort);
        this.ws = null;
        this.connectedAt = null;
        const deliberate = this.closingReason !== null;
        const why = this.closingReason ?? lastError ?? `closed by server (${code}${reasonBuf.length > 0 ? ` ${reasonBuf.toString()}` : ''})`;
        resolve({ reason: why, openDurationMs: openedAt === null ? null : this.now() - openedAt, deliberate });
      });
    });
  }
}
