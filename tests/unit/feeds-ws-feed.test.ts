import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { backoffDelay } from '../../src/lib/backoff.js';
import { freshness, staleThresholdMs } from '../../src/lib/feeds/freshness.js';
import { WsFeed, nextAttempt, watchdogVerdict } from '../../src/lib/feeds/ws-feed.js';

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

  it('is starting within the grace period before the first record, stale after it', () => {
    expect(freshness(input)).toBe('starting');
    expect(freshness({ ...input, startedAt: 900_000 })).toBe('stale');
  });

  it('uses a 60 s threshold for trades', () => {
    expect(staleThresholdMs('trade')).toBe(60_000);
    expect(freshness({ ...input, lastSuccessAt: 941_000 })).toBe('fresh');
    expect(freshness({ ...input, lastSuccessAt: 940_000 })).toBe('stale');
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
    o: { staleAfterMs: number; reconnect: { initialMs: number; maxMs: number }; subscribeMessages?: string[]; onFrame?: (f: string) => void; onReconnect?: (r: string) => void },
  ): WsFeed {
    return new WsFeed({
      spec: { id: 't/0', url, subscribeMessages: o.subscribeMessages ?? [], maxConnectionAgeMs: 3600_000 },
      staleAfterMs: o.staleAfterMs,
      reconnect: o.reconnect,
      stableAfterMs: 60_000,
      log,
      onFrame: o.onFrame ?? (() => undefined),
      onReconnect: o.onReconnect ?? (() => undefined),
    });
  }

  const waitFor = async (cond: () => boolean, ms = 5000) => {
    const until = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > until) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 10));
    }
  };

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
    const feed = testFeed(url, { staleAfterMs: 10_000, reconnect: { initialMs: 20, maxMs: 100 }, subscribeMessages: ['sub'], onFrame: (f) => received.push(f), onReconnect: (r) => reasons.push(r) });
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

  it('replaces a connection that goes silent (stale watchdog)', async () => {
    const url = await server((ws) => ws.send('hello'));
    const reasons: string[] = [];
    const feed = testFeed(url, { staleAfterMs: 200, reconnect: { initialMs: 10, maxMs: 50 }, onReconnect: (r) => reasons.push(r) });
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
    const feed = testFeed('ws://127.0.0.1:1', { staleAfterMs: 1000, reconnect: { initialMs: 10, maxMs: 40 }, onReconnect: (r) => reasons.push(r) });
    const ac = new AbortController();
    const running = feed.run(ac.signal);
    await waitFor(() => reasons.length >= 3);
    expect(reasons[0]).toMatch(/ECONNREFUSED/);
    expect(feed.stats.connects).toBe(0);
    ac.abort();
    await running;
  });
});
