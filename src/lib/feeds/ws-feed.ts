import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { backoffDelay, sleep, type BackoffPolicy } from '../backoff.js';
import type { DataType } from '../config/schema.js';
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
  /** Planned replacements that overlapped the old connection until the new one delivered (nothing lost). */
  handovers: number;
  frames: number;
  /** Turns of the event loop in which a connection stopped reading to let the rest run (TURN_BUDGET_MS). */
  yields: number;
  /** Pings sent to reopen a venue's stalled sending after we stopped reading (windowNudgeDue). */
  windowNudges: number;
  lastFrameAt: number | null;
  connectedAt: number | null;
  lastDisconnectReason: string | null;
}

/** A connection of the feed ended while the feed was meant to run. */
export interface FeedDisconnect {
  reason: string;
  /** A replacement was already delivering when this connection closed: no frame was missed. */
  seamless: boolean;
}

export interface WsFeedOptions {
  spec: WsConnectionSpec;
  /** Silence threshold for specs that do not set their own staleAfterMs. */
  staleAfterMs: number;
  reconnect: BackoffPolicy;
  /** A connection that stayed open this long resets the backoff to its first step. */
  stableAfterMs: number;
  log: Logger;
  /**
   * Called synchronously for every text frame, in arrival order per connection (during a handover
   * both connections deliver). Returns true when the frame carried market data.
   */
  onFrame(frame: string, receiveTime: number): boolean;
  /** Called once per connection that ends while the feed runs. */
  onDisconnect?(event: FeedDisconnect): void;
  now?: () => number;
  handshakeTimeoutMs?: number;
  /** A replacement that delivers no data within this long takes over anyway. */
  handoverTimeoutMs?: number;
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

/** Whether to send the client keepalive now: once per silence of afterSilenceMs since the last frame or ping sent. */
export function keepaliveDue(input: { now: number; lastFrameAt: number; lastKeepaliveAt: number; afterSilenceMs: number }): boolean {
  return input.now - Math.max(input.lastFrameAt, input.lastKeepaliveAt) >= input.afterSilenceMs;
}

/** How long after we stopped reading a connection a silence is suspected to be the venue's stalled TCP sending. */
export const NUDGE_PERIOD_MS = 60_000;
/** Silence after which such a connection is pinged, and how often while it stays silent. */
export const NUDGE_AFTER_SILENCE_MS = 1000;

/**
 * Whether to ping a connection we lately stopped reading because our queue was full (not a turn
 * budget's yield, a few ms) and that has been silent since resume(). While we did not read, our
 * receive window closed and the venue's TCP went to probing it at backed-off intervals (backoff 7,
 * about 25 s, seen with `ss`); a segment from us carries the reopened window, and a ping is one.
 * Measured in `npm run bench -- outage`: without it, a connection resumed after a two-minute NATS
 * outage sometimes stayed silent until the stale watchdog replaced it, losing what the venue held
 * for it; with it, every stream was live again within seconds.
 */
export function windowNudgeDue(input: { now: number; nudgeUntil: number; lastFrameAt: number; lastNudgeAt: number }): boolean {
  // The keepalive's rule, once a second and only in the period after a resume.
  return (
    input.now < input.nudgeUntil &&
    keepaliveDue({ now: input.now, lastFrameAt: input.lastFrameAt, lastKeepaliveAt: input.lastNudgeAt, afterSilenceMs: NUDGE_AFTER_SILENCE_MS })
  );
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
const DEFAULT_HANDOVER_TIMEOUT_MS = 10_000;

interface ConnectionEnd {
  reason: string;
  openDurationMs: number | null;
  /** We closed it on purpose (stale, replaced, venue notice): reconnect without backoff. */
  deliberate: boolean;
}

/** One socket of a feed and its timing. */
class Connection {
  readonly ws: WebSocket;
  readonly ended: Promise<ConnectionEnd>;
  readonly createdAt: number;
  openedAt: number | null = null;
  /** Frames and venue pings: proof of life for the stale watchdog. */
  lastActivityAt = 0;
  /** Text frames only: drives the client keepalive. */
  lastFrameAt = 0;
  lastKeepaliveAt = 0;
  deliveredData = false;
  /** When this turn of the event loop began handing this connection's frames on (null: not this turn). */
  turnStartedAt: number | null = null;
  /** Paused for the rest of this turn after using up its share (TURN_BUDGET_MS). */
  yielding = false;
  /** Until when a silence may be the venue's TCP waiting on our reopened window (windowNudgeDue). */
  nudgeUntil = 0;
  lastNudgeAt = 0;
  /** Set when we close it, so the close handler reports why. */
  closingReason: string | null = null;
  private lastError: string | null = null;

  constructor(url: string, handshakeTimeoutMs: number, now: () => number) {
    this.createdAt = now();
    this.ws = new WebSocket(url, { handshakeTimeout: handshakeTimeoutMs, perMessageDeflate: false });
    this.ws.on('error', (err: Error) => {
      this.lastError = errorMessage(err);
    });
    this.ended = new Promise((resolve) => {
      this.ws.on('close', (code: number, reasonBuf: Buffer) => {
        const why = this.closingReason ?? this.lastError ?? `closed by server (${code}${reasonBuf.length > 0 ? ` ${reasonBuf.toString()}` : ''})`;
        resolve({ reason: why, openDurationMs: this.openedAt === null ? null : now() - this.openedAt, deliberate: this.closingReason !== null });
      });
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Drop it now; frames in flight are not waited for. */
  terminate(reason: string): void {
    this.closingReason ??= reason;
    this.ws.terminate();
  }

  /** Close politely, then for sure. */
  shutdown(): void {
    this.closingReason ??= 'shutdown';
    this.ws.close(1000, 'shutdown');
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }
}

/** What one connection's frames may take of a turn of the event loop before it yields to the rest. */
export const TURN_BUDGET_MS = 10;

/**
 * One WebSocket connection kept alive: client keepalive, stale watchdog, reconnects with capped
 * jittered backoff. Planned replacements (max age, venue notice) are make-before-break: the new
 * connection subscribes while the old one still delivers, and the old one closes once the new one
 * delivers data, so a planned recycle loses nothing. Frames duplicated meanwhile are harmless
 * downstream (Msg-Id dedupe; book sequence checks skip repeats).
 */
export class WsFeed {
  private state: FeedState = 'idle';
  private active: Connection | null = null;
  /** A replacement being opened while `active` still serves. */
  private incoming: { conn: Connection; reason: string } | null = null;
  private paused = false;
  private connects = 0;
  private reconnects = 0;
  private handovers = 0;
  private frames = 0;
  private yields = 0;
  private windowNudges = 0;
  private lastFrameAt: number | null = null;
  private lastDisconnectReason: string | null = null;
  private signal: AbortSignal | null = null;
  private readonly now: () => number;
  private readonly staleAfterMs: number;

  constructor(private readonly opts: WsFeedOptions) {
    this.now = opts.now ?? Date.now;
    this.staleAfterMs = opts.spec.staleAfterMs ?? opts.staleAfterMs;
  }

  get id(): string {
    return this.opts.spec.id;
  }

  get url(): string {
    return this.opts.spec.url;
  }

  get dataTypes(): readonly DataType[] {
    return this.opts.spec.dataTypes;
  }

  get stats(): FeedStats {
    return {
      state: this.state,
      connects: this.connects,
      reconnects: this.reconnects,
      handovers: this.handovers,
      frames: this.frames,
      yields: this.yields,
      windowNudges: this.windowNudges,
      lastFrameAt: this.lastFrameAt,
      connectedAt: this.active?.openedAt ?? null,
      lastDisconnectReason: this.lastDisconnectReason,
    };
  }

  /** Runs until the signal aborts; never rejects on network errors. */
  async run(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    const onAbort = () => {
      this.active?.shutdown();
      this.incoming?.conn.shutdown();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    let attempt = -1;
    while (!signal.aborted) {
      this.state = 'connecting';
      this.active = this.open();
      const end = await this.activeEnded();
      if (signal.aborted) break;
      attempt = nextAttempt(attempt, end.openDurationMs, this.opts.stableAfterMs);
      // A connection we replaced on purpose (stale, failed handover) reconnects at once.
      const delay = end.deliberate ? 0 : backoffDelay(attempt, { jitter: 0.3, ...this.opts.reconnect });
      this.opts.log.warn({ feed: this.id, reason: end.reason, delayMs: delay }, 'ws connection lost, reconnecting');
      this.state = 'backoff';
      await sleep(delay, signal);
    }
    signal.removeEventListener('abort', onAbort);
    await Promise.all([this.active?.ended, this.incoming?.conn.ended]);
    this.state = 'stopped';
  }

  /**
   * Replace the connection on our terms (max age, the venue announced a shutdown or refused a
   * subscription): a new one is opened and subscribed first; the old one closes once the new one
   * delivers data, or after the handover timeout.
   */
  recycle(reason: string): void {
    if (this.signal === null || this.signal.aborted || this.incoming !== null) return;
    if (this.active === null || !this.active.isOpen) return; // a fresh connection is on its way anyway
    this.opts.log.info({ feed: this.id, reason }, 'replacing ws connection (make-before-break)');
    this.incoming = { conn: this.open(), reason };
  }

  /** Send a text frame on the serving connection; false when none is open. */
  send(text: string): boolean {
    const conn = this.active;
    if (conn === null || !conn.isOpen) return false;
    conn.ws.send(text);
    return true;
  }

  /** Stop reading frames (TCP backpressure reaches the venue) until resume(). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.active?.ws.pause();
    this.incoming?.conn.ws.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    for (const conn of [this.active, this.incoming?.conn]) {
      if (conn === null || conn === undefined) continue;
      conn.lastActivityAt = this.now();
      conn.nudgeUntil = conn.lastActivityAt + NUDGE_PERIOD_MS;
      conn.ws.resume();
    }
  }

  /** Resolves when the serving connection ends, following handovers to their replacements. */
  private async activeEnded(): Promise<ConnectionEnd> {
    for (;;) {
      const conn = this.active as Connection;
      const end = await conn.ended;
      if (this.active === conn) return end;
    }
  }

  private open(): Connection {
    const { spec, log } = this.opts;
    const conn = new Connection(spec.url, this.opts.handshakeTimeoutMs ?? 10_000, this.now);
    const { ws } = conn;
    const checkEveryMs = Math.max(50, Math.min(1000, this.staleAfterMs / 4, (spec.keepalive?.afterSilenceMs ?? Infinity) / 4));
    const timer = setInterval(() => this.check(conn), checkEveryMs);

    ws.on('open', () => {
      const openedAt = this.now();
      conn.openedAt = openedAt;
      conn.lastActivityAt = openedAt;
      conn.lastFrameAt = openedAt;
      this.connects++;
      if (conn === this.active) this.state = 'open';
      if (this.paused) ws.pause();
      for (const msg of spec.subscribeMessages) ws.send(msg);
      log.info({ feed: spec.id, url: spec.url }, 'ws connected');
    });

    // Venues ping idle connections (Binance every 20 s; ws answers with pong): a ping proves the
    // connection alive, so a quiet symbol is not mistaken for a dead socket. A subscription that
    // stays silent while pings flow is reported stale by data age in health, not reconnected.
    ws.on('ping', () => {
      conn.lastActivityAt = this.now();
    });

    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (isBinary) return;
      this.takeTurn(conn);
      const receiveTime = this.now();
      conn.lastActivityAt = receiveTime;
      conn.lastFrameAt = receiveTime;
      this.lastFrameAt = receiveTime;
      this.frames++;
      const text = Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Array.isArray(data)
          ? Buffer.concat(data).toString('utf8')
          : Buffer.from(data).toString('utf8');
      const carriedData = this.opts.onFrame(text, receiveTime);
      if (carriedData && !conn.deliveredData) {
        conn.deliveredData = true;
        if (this.incoming?.conn === conn) this.promote();
      }
      this.yieldIfTurnUsed(conn);
    });

    void conn.ended.then((end) => {
      clearInterval(timer);
      this.onEnded(conn, end);
    });
    return conn;
  }

  /** Notes when this turn of the event loop began serving the connection. */
  private takeTurn(conn: Connection): void {
    if (conn.turnStartedAt !== null) return;
    conn.turnStartedAt = performance.now();
    setImmediate(() => {
      conn.turnStartedAt = null;
    });
  }

  /**
   * A connection whose frames have taken TURN_BUDGET_MS this turn stops reading until the next one.
   * With a backlog in the socket, libuv would otherwise hand on megabytes in one turn (32 reads of
   * 64 KiB), and the timers, the other connections and the publishing would wait that long.
   */
  private yieldIfTurnUsed(conn: Connection): void {
    if (conn.yielding || conn.turnStartedAt === null || performance.now() - conn.turnStartedAt < TURN_BUDGET_MS) return;
    conn.yielding = true;
    this.yields++;
    conn.ws.pause();
    setImmediate(() => {
      conn.yielding = false;
      // Still paused by backpressure: resume() reads again when the queue has room.
      if (!this.paused) conn.ws.resume();
    });
  }

  /** Per-connection timer: client keepalive, stale watchdog, max age, handover timeout. */
  private check(conn: Connection): void {
    const now = this.now();
    const { spec } = this.opts;
    if (conn.openedAt === null || !conn.isOpen) return;
    if (spec.keepalive !== null && keepaliveDue({ now, lastFrameAt: conn.lastFrameAt, lastKeepaliveAt: conn.lastKeepaliveAt, afterSilenceMs: spec.keepalive.afterSilenceMs })) {
      conn.lastKeepaliveAt = now;
      conn.ws.send(spec.keepalive.message);
    }
    if (!this.paused && windowNudgeDue({ now, nudgeUntil: conn.nudgeUntil, lastFrameAt: conn.lastFrameAt, lastNudgeAt: conn.lastNudgeAt })) {
      conn.lastNudgeAt = now;
      this.windowNudges++;
      conn.ws.ping();
    }
    if (this.incoming?.conn === conn) {
      if (now - conn.createdAt >= (this.opts.handoverTimeoutMs ?? DEFAULT_HANDOVER_TIMEOUT_MS)) this.promote();
      return;
    }
    if (conn !== this.active) return;
    const verdict = watchdogVerdict({
      now,
      openedAt: conn.openedAt,
      lastActivityAt: conn.lastActivityAt,
      paused: this.paused,
      staleAfterMs: this.staleAfterMs,
      maxConnectionAgeMs: spec.maxConnectionAgeMs,
    });
    if (!verdict.replace) return;
    // A silent connection is dead: nothing to overlap with, replace it at once.
    if (verdict.reason === 'stale') conn.terminate('stale');
    else this.recycle('max_age');
  }

  /** The replacement takes over; the old connection is closed. */
  private promote(): void {
    const incoming = this.incoming;
    if (incoming === null) return;
    const old = this.active;
    this.incoming = null;
    this.active = incoming.conn;
    this.handovers++;
    this.state = 'open';
    this.opts.log.info({ feed: this.id, reason: incoming.reason, delivered: incoming.conn.deliveredData }, 'ws connection handed over');
    old?.terminate(incoming.reason);
  }

  private onEnded(conn: Connection, end: ConnectionEnd): void {
    if (this.signal?.aborted === true) return;
    if (this.incoming?.conn === conn) {
      // The replacement failed before taking over: drop the old connection too and reconnect the
      // ordinary way, since the venue is about to cut it or asked us to leave.
      this.incoming = null;
      this.opts.log.warn({ feed: this.id, reason: end.reason }, 'replacement connection failed before taking over');
      this.active?.terminate(`replacement failed: ${end.reason}`);
      return;
    }
    let seamless = conn !== this.active;
    if (conn === this.active && this.incoming !== null) {
      // Lost while its replacement was on the way: the replacement serves from now on.
      const next = this.incoming.conn;
      this.incoming = null;
      this.active = next;
      this.state = next.isOpen ? 'open' : 'connecting';
      seamless = next.deliveredData;
    }
    this.reconnects++;
    this.lastDisconnectReason = end.reason;
    this.opts.onDisconnect?.({ reason: end.reason, seamless });
  }
}
