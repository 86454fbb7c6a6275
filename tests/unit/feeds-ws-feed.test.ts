import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { backoffDelay } from '../../src/lib/backoff.js';
import { DATA_TYPES } from '../../src/lib/config/schema.js';
import type { WsConnectionSpec } from '../../src/lib/exchanges/types.js';
import { freshness, staleThresholdMs } from '../../src/lib/feeds/freshness.js';
import { NUDGE_AFTER_SILENCE_MS, WsFeed, keepaliveDue, nextAttempt, watchdogVerdict, windowNudgeDue, type FeedDisconnect } from '../../src/lib/feeds/ws-feed.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: 'silent' });

describe('watchdogVerdict', () => {
  const base = { now: 100_000, openedAt: 0, lastActivityAt: 99_000, paused: false, staleAfterMs: 60_000, maxConnectionAgeMs: 23 * 3600_000 };

  it('keeps a connection with recent frames', () => {
    expect(watchdogVerdict(base)).toEqual({ replace: false });
  });

  it('replaces a connection silent for staleAfterMs', () => {
    expect(watchdogVerdict({ ...base, lastActivityAt: 40_000 })).toEqual({ replace: true, reason: 'stale' });
    expect(watchdogVerdict({ ...base, lastActivityAt: 40_001 })).toEqual({ replace: false });
  });

  it('does not count time paused by our own backpressure as silence', () => {
    expect(watchdogVerdict({ ...base, lastActivityAt: 0, paused: true })).toEqual({ replace: false });
  });

  it('replaces a connection before the venue cuts it at 24 h', () => {
    expect(watchdogVerdict({ ...base, now: 23 * 3600_000, lastActivityAt: 23 * 3600_000 - 1 })).toEqual({ replace: true, reason: 'max_age' });
  });
});

describe('nextAttempt', () => {
  it('grows while connections keep failing fast and resets after a stable one', () => {
    expect(nextAttempt(-1, null, 60_000)).toBe(0);
    expect(nextAttempt(0, null, 60_000)).toBe(1);
    expect(nextAttempt(3, 5_000, 60_000)).toBe(4);
    expect(nextAttempt(7, 60_000, 60_000)).toBe(0);
  });

  it('drives a capped, jittered backoff', () => {
    const policy = { initialMs: 500, maxMs: 30_000, jitter: 0.3 };
    const delays = [0, 1, 2, 3, 10].map((a) => backoffDelay(a, policy, () => 0));
    expect(delays).toEqual([500, 1000, 2000, 4000, 30_000]);
    expect(backoffDelay(10, policy, () => 1)).toBe(21_000);
  });
});

describe('freshness', () => {
  const input = { now: 1_000_000, startedAt: 990_000, lastSuccessAt: null, thresholdMs: staleThresholdMs('trade'), graceMs: 30_000 };

  it('is starting within the grace period before the first record, stale after it (acked but silent subscription)', () => {
    expect(freshness(input)).toBe('starting');
    expect(freshness({ ...input, startedAt: 900_000 })).toBe('stale');
  });

  it('uses a 60 s threshold for trades', () => {
    expect(freshness({ ...input, lastSuccessAt: 941_000 })).toBe('fresh');
    expect(freshness({ ...input, lastSuccessAt: 940_000 })).toBe('stale');
  });

  it('has the documented threshold per data type', () => {
    expect(Object.fromEntries(DATA_TYPES.map((t) => [t, staleThresholdMs(t) / 1000]))).toEqual({
      trade: 60,
      orderbook: 60,
      liquidation: 3600,
      funding_rate: 28_800,
      open_interest: 28_800,
      lsr_top_position: 28_800,
      lsr_all_account: 28_800,
      volatility_index: 28_800,
    });
  });
});

describe('keepaliveDue', () => {
  it('pings once per silence period after the last frame or ping', () => {
    expect(keepaliveDue({ now: 25_000, lastFrameAt: 0, lastKeepaliveAt: 0, afterSilenceMs: 25_000 })).toBe(true);
    expect(keepaliveDue({ now: 24_999, lastFrameAt: 0, lastKeepaliveAt: 0, afterSilenceMs: 25_000 })).toBe(false);
    expect(keepaliveDue({ now: 30_000, lastFrameAt: 0, lastKeepaliveAt: 25_000, afterSilenceMs: 25_000 })).toBe(false);
    expect(keepaliveDue({ now: 50_000, lastFrameAt: 0, lastKeepaliveAt: 25_000, afterSilenceMs: 25_000 })).toBe(true);
  });
});

describe('windowNudgeDue', () => {
  const base = { nudgeUntil: 60_000, lastFrameAt: 0, lastNudgeAt: 0 };
  it('pings a connection we paused lately once per second of silence', () => {
    expect(windowNudgeDue({ ...base, now: NUDGE_AFTER_SILENCE_MS - 1 })).toBe(false);
    expect(windowNudgeDue({ ...base, now: NUDGE_AFTER_SILENCE_MS })).toBe(true);
    expect(windowNudgeDue({ ...base, now: 1500, lastNudgeAt: 1000 })).toBe(false);
    expect(windowNudgeDue({ ...base, now: 2000, lastNudgeAt: 1000 })).toBe(true);
    // Frames flow: nothing to reopen.
    expect(windowNudgeDue({ ...base, now: 5000, lastFrameAt: 4500 })).toBe(false);
  });
  it('leaves a connection alone once the period after our pause is over (a quiet symbol is not pinged every second)', () => {
    expect(windowNudgeDue({ ...base, now: 60_000 })).toBe(false);
    expect(windowNudgeDue({ ...base, nudgeUntil: 0, now: 5000 })).toBe(false);
  });
});

describe('WsFeed against a local server', () => {
  let wss: WebSocketServer | null = null;
  afterEach(async () => {
    for (const c of wss?.clients ?? []) c.terminate();
    await new Promise<void>((r) => (wss ? wss.close(() => r()) : r()));
    wss = null;
  });

  async function server(onConnection: (ws: WebSocket, n: number) => void): Promise<string> {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    let n = 0;
    wss.on('connection', (ws) => onConnection(ws, n++));
    return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  }

  function testFeed(
    url: string,
    o: {
      staleAfterMs: number;
      reconnect: { initialMs: number; maxMs: number };
      spec?: Partial<WsConnectionSpec>;
      onFrame?: (f: string) => boolean;
      onDisconnect?: (d: FeedDisconnect) => void;
      handoverTimeoutMs?: number;
    },
  ): WsFeed {
    return new WsFeed({
      spec: { id: 't/0', url, dataTypes: ['trade'], subscribeMessages: [], maxConnectionAgeMs: 3600_000, keepalive: null, staleAfterMs: null, ...o.spec },
      staleAfterMs: o.staleAfterMs,
      reconnect: o.reconnect,
      stableAfterMs: 60_000,
      log,
      onFrame: o.onFrame ?? (() => true),
      onDisconnect: o.onDisconnect ?? (() => undefined),
      handoverTimeoutMs: o.handoverTimeoutMs,
    });
  }


  it('sends subscriptions, delivers frames, reconnects after the server closes, stops on abort', async () => {
    const received: string[] = [];
    const subscribes: string[] = [];
    const url = await server((ws, n) => {
      ws.on('message', (m: Buffer) => {
        subscribes.push(m.toString());
        ws.send(`frame-${n}`);
        if (n === 0) ws.close(1001, 'bye');
      });
    });
    const reasons: string[] = [];
    const feed = testFeed(url, {
      staleAfterMs: 10_000,
      reconnect: { initialMs: 20, maxMs: 100 },
      spec: { subscribeMessages: ['sub'] },
      onFrame: (f) => received.push(f) > 0,
      onDisconnect: (d) => reasons.push(d.reason),
    });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => received.length === 2);
    expect(received).toEqual(['frame-0', 'frame-1']);
    expect(subscribes).toEqual(['sub', 'sub']);
    expect(reasons).toEqual(['closed by server (1001 bye)']);
    expect(feed.stats).toMatchObject({ state: 'open', connects: 2, reconnects: 1, frames: 2 });
    ac.abort();
    await running;
    expect(feed.stats.state).toBe('stopped');
  });

  it('stops reading for the rest of a turn once frames took its share, and delivers every frame in order', async () => {
    const FRAMES = 1500;
    const url = await server((ws) => {
      ws.on('message', () => {
        const pad = 'x'.repeat(90);
        for (let i = 0; i < FRAMES; i++) ws.send(`${String(i).padStart(6, '0')}${pad}`);
      });
    });
    const received: number[] = [];
    const feed = testFeed(url, {
      staleAfterMs: 60_000,
      reconnect: { initialMs: 20, maxMs: 100 },
      spec: { subscribeMessages: ['sub'] },
      onFrame: (f) => {
        received.push(Number(f.slice(0, 6)));
        // Parsing and book work: 1500 frames take 150 ms, many times TURN_BUDGET_MS.
        const until = performance.now() + 0.1;
        while (performance.now() < until) {
          // busy
        }
        return true;
      },
    });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => received.length === FRAMES);
    ac.abort();
    await running;
    expect(received).toEqual(Array.from({ length: FRAMES }, (_, i) => i));
    expect(feed.stats.yields).toBeGreaterThan(0);
  });

  it('pings a connection that stays silent after we stop and resume reading it (the venue waits for our window to reopen)', async () => {
    let pings = 0;
    const url = await server((ws) => {
      ws.send('hello');
      ws.on('ping', () => pings++);
    });
    const feed = testFeed(url, { staleAfterMs: 60_000, reconnect: { initialMs: 20, maxMs: 100 } });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => feed.stats.frames === 1);
    // Silent but never paused by us: not pinged.
    await new Promise((r) => setTimeout(r, 2 * NUDGE_AFTER_SILENCE_MS + 200));
    expect(pings).toBe(0);
    feed.pause();
    feed.resume();
    await waitFor(() => pings >= 2, 5000);
    expect(feed.stats.windowNudges).toBe(pings);
    ac.abort();
    await running;
  });

  it('replaces a connection that goes silent (stale watchdog)', async () => {
    const url = await server((ws) => ws.send('hello'));
    const reasons: string[] = [];
    const feed = testFeed(url, { staleAfterMs: 200, reconnect: { initialMs: 10, maxMs: 50 }, onDisconnect: (d) => reasons.push(d.reason) });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => feed.stats.connects >= 2);
    expect(reasons[0]).toBe('stale');
    ac.abort();
    await running;
  });

  it('keeps a quiet connection that the server pings (no false reconnect on a quiet symbol)', async () => {
    const url = await server((ws) => {
      ws.send('hello');
      const timer = setInterval(() => ws.ping(), 50);
      ws.on('close', () => clearInterval(timer));
    });
    const feed = testFeed(url, { staleAfterMs: 200, reconnect: { initialMs: 10, maxMs: 50 } });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => feed.stats.connects === 1);
    await new Promise((r) => setTimeout(r, 800)); // four times staleAfterMs without a data frame
    expect(feed.stats).toMatchObject({ connects: 1, reconnects: 0, frames: 1 });
    ac.abort();
    await running;
  });

  it('keeps retrying with backoff while the server is down', async () => {
    const reasons: string[] = [];
    const feed = testFeed('ws://127.0.0.1:1', { staleAfterMs: 1000, reconnect: { initialMs: 10, maxMs: 40 }, onDisconnect: (d) => reasons.push(d.reason) });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => reasons.length >= 3);
    expect(reasons[0]).toMatch(/ECONNREFUSED/);
    expect(feed.stats.connects).toBe(0);
    ac.abort();
    await running;
  });

  it('sends the client keepalive after silence and counts the answer as activity (OKX ping/pong)', async () => {
    const pings: string[] = [];
    const url = await server((ws) => {
      ws.on('message', (m: Buffer) => {
        pings.push(m.toString());
        if (m.toString() === 'ping') ws.send('pong');
      });
    });
    const feed = testFeed(url, { staleAfterMs: 10_000, reconnect: { initialMs: 10, maxMs: 50 }, spec: { keepalive: { message: 'ping', afterSilenceMs: 60 }, staleAfterMs: 250 }, onFrame: () => false });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await new Promise((r) => setTimeout(r, 800)); // three times the connection's own stale threshold
    expect(pings.length).toBeGreaterThanOrEqual(4);
    expect(new Set(pings)).toEqual(new Set(['ping']));
    expect(feed.stats).toMatchObject({ connects: 1, reconnects: 0 });
    ac.abort();
    await running;
  });

  it("uses the connection's own stale threshold over the collector default", async () => {
    const url = await server((ws) => ws.send('hello'));
    const reasons: string[] = [];
    const feed = testFeed(url, { staleAfterMs: 60_000, reconnect: { initialMs: 10, maxMs: 50 }, spec: { staleAfterMs: 150 }, onDisconnect: (d) => reasons.push(d.reason) });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => feed.stats.connects >= 2);
    expect(reasons[0]).toBe('stale');
    ac.abort();
    await running;
  });

  it('sends text on the open connection (ControlAction send, book resubscribes)', async () => {
    const got: string[] = [];
    const url = await server((ws) => ws.on('message', (m: Buffer) => got.push(m.toString())));
    const feed = testFeed(url, { staleAfterMs: 10_000, reconnect: { initialMs: 10, maxMs: 50 } });
    expect(feed.send('too early')).toBe(false);
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => feed.stats.state === 'open');
    expect(feed.send('{"method":"public/test"}')).toBe(true);
    await waitFor(() => got.length === 1);
    expect(got).toEqual(['{"method":"public/test"}']);
    ac.abort();
    await running;
  });

  /** Every subscribed client gets the same numbered frames, like a venue's channel; `ack` answers a subscribe. */
  async function channelServer(o: { everyMs: number; silentAfter?: number } = { everyMs: 4 }) {
    let seq = 0;
    let connections = 0;
    const subscribed = new Set<WebSocket>();
    const url = await server((ws, n) => {
      connections++;
      ws.on('message', () => {
        ws.send('ack');
        if (o.silentAfter === undefined || n < o.silentAfter) subscribed.add(ws);
      });
      ws.on('close', () => subscribed.delete(ws));
    });
    const timer = setInterval(() => {
      seq++;
      for (const ws of subscribed) ws.send(String(seq));
    }, o.everyMs);
    return { url, stop: () => clearInterval(timer), connections: () => connections, open: () => subscribed.size };
  }

  function expectContiguous(frames: string[]): void {
    const ids = [...new Set(frames.filter((f) => f !== 'ack').map(Number))].sort((a, b) => a - b);
    expect(ids.length).toBeGreaterThan(20);
    expect(ids.at(-1)! - ids[0]! + 1).toBe(ids.length);
  }

  it('replaces a connection make-before-break on a venue notice: no frame lost, the old one closed after the new one delivers', async () => {
    const ch = await channelServer();
    const frames: string[] = [];
    const disconnects: FeedDisconnect[] = [];
    const feed = testFeed(ch.url, {
      staleAfterMs: 10_000,
      reconnect: { initialMs: 1000, maxMs: 1000 },
      spec: { subscribeMessages: ['sub'] },
      onFrame: (f) => frames.push(f) > 0 && f !== 'ack',
      onDisconnect: (d) => disconnects.push(d),
    });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => frames.length > 30);
    feed.recycle('serverShutdown');
    await waitFor(() => feed.stats.handovers === 1 && ch.open() === 1);
    await waitFor(() => frames.length > 100);
    ac.abort();
    await running;
    ch.stop();
    expectContiguous(frames);
    expect(ch.connections()).toBe(2);
    expect(disconnects).toEqual([{ reason: 'serverShutdown', seamless: true }]);
    expect(feed.stats).toMatchObject({ connects: 2, reconnects: 1, handovers: 1, lastDisconnectReason: 'serverShutdown' });
  });

  it('replaces a connection before its maximum age the same way', async () => {
    const ch = await channelServer();
    const frames: string[] = [];
    const feed = testFeed(ch.url, {
      staleAfterMs: 10_000,
      reconnect: { initialMs: 1000, maxMs: 1000 },
      spec: { subscribeMessages: ['sub'], maxConnectionAgeMs: 300 },
      onFrame: (f) => frames.push(f) > 0 && f !== 'ack',
    });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => feed.stats.handovers >= 2);
    ac.abort();
    await running;
    ch.stop();
    expectContiguous(frames);
    expect(feed.stats.lastDisconnectReason).toBe('max_age');
  });

  it('hands over after the timeout when the replacement delivers nothing', async () => {
    const ch = await channelServer({ everyMs: 4, silentAfter: 1 });
    const disconnects: FeedDisconnect[] = [];
    const feed = testFeed(ch.url, {
      staleAfterMs: 10_000,
      reconnect: { initialMs: 1000, maxMs: 1000 },
      spec: { subscribeMessages: ['sub'] },
      onFrame: (f) => f !== 'ack',
      onDisconnect: (d) => disconnects.push(d),
      handoverTimeoutMs: 200,
    });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => feed.stats.frames > 10);
    const started = Date.now();
    feed.recycle('serverShutdown');
    await waitFor(() => feed.stats.handovers === 1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await waitFor(() => disconnects.length === 1);
    expect(ch.open()).toBe(0);
    ac.abort();
    await running;
    ch.stop();
  });
});
