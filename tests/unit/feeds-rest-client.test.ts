import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RateLimitPolicy } from '../../src/lib/exchanges/types.js';
import { RestClient, RestError, RestNetworkError, WeightBudget, parseRetryAfter, type RestClientHooks } from '../../src/lib/feeds/rest-client.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { ManualClock, eventually, startLocalHttp, type LocalHttp } from '../helpers/local-http.js';

const POLICY: RateLimitPolicy = { weightPerWindow: 5, windowMs: 1000, usedWeightHeader: null };

describe('WeightBudget', () => {
  it('admits weight up to capacity, then waits until the oldest spend leaves the window', () => {
    const b = new WeightBudget(4, 1000);
    for (let i = 0; i < 4; i++) {
      expect(b.waitFor(1, 0)).toBe(0);
      b.spend(1, i * 100);
    }
    expect(b.waitFor(1, 300)).toBe(700);
    expect(b.waitFor(2, 300)).toBe(800);
    expect(b.waitFor(1, 1000)).toBe(0);
    expect(b.used(1000)).toBe(3);
  });

  it('lets a request heavier than the whole budget go once the window is empty', () => {
    const b = new WeightBudget(4, 1000);
    expect(b.waitFor(250, 0)).toBe(0);
    b.spend(250, 0);
    expect(b.waitFor(1, 500)).toBe(500);
  });

  it('counts weight the venue reports beyond our own, and never less than our own', () => {
    const b = new WeightBudget(10, 60_000);
    b.spend(2, 0);
    b.sync(7, 10);
    expect(b.used(10)).toBe(7);
    b.sync(3, 20);
    expect(b.used(20)).toBe(7);
  });

  it('holds everything back while blocked', () => {
    const b = new WeightBudget(10, 1000);
    b.block(5000);
    expect(b.waitFor(1, 1000)).toBe(4000);
    expect(b.waitFor(1, 5000)).toBe(0);
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(parseRetryAfter('2', 0)).toBe(2000);
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:27:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
  });
});

describe('RestClient against a local HTTP server', () => {
  let server: LocalHttp;
  let clock: ManualClock;
  const controller = new AbortController();
  const calls: string[] = [];
  const hooks: RestClientHooks = {
    request: (outcome) => calls.push(`request ${outcome}`),
    waited: (ms) => calls.push(`waited ${ms}`),
    rateLimited: (status, ms) => calls.push(`rateLimited ${status} ${ms}`),
  };
  const client = (policy: RateLimitPolicy = POLICY, timeoutMs = 5000) =>
    new RestClient({ venue: 'binance_derivatives', policy, hooks, clock, timeoutMs, defaultRetryAfterMs: 7000 });

  beforeEach(async () => {
    server = await startLocalHttp();
    clock = new ManualClock();
    calls.length = 0;
  });
  afterEach(() => server.close());

  it('returns status, body, headers and receive time of a 2xx answer', async () => {
    server.handle((_req, res) => {
      res.setHeader('x-test', 'yes');
      res.end('{"ok":true}');
    });
    const res = await client().get({ url: `${server.url}/a`, weight: 1 }, controller.signal);
    expect(res).toMatchObject({ url: `${server.url}/a`, status: 200, body: '{"ok":true}', receiveTime: clock.t });
    expect(res.headers.get('x-test')).toBe('yes');
    expect(calls).toEqual(['request 200']);
  });

  it('spreads a burst over the window in arrival order, keeping 80% of the limit', async () => {
    const c = client();
    const done = Array.from({ length: 10 }, (_, i) => c.get({ url: `${server.url}/r${i}`, weight: 1 }, controller.signal));
    // Budget 4 of 5 per second: four go now, the fifth waits for the window.
    await eventually(() => server.hits.length === 4 && clock.sleeping === 1);
    expect(server.hits).toEqual(['/r0', '/r1', '/r2', '/r3']);
    clock.advance(1000);
    await eventually(() => server.hits.length === 8 && clock.sleeping === 1);
    expect(new Set(server.hits.slice(4))).toEqual(new Set(['/r4', '/r5', '/r6', '/r7']));
    clock.advance(1000);
    await Promise.all(done);
    expect(server.hits.slice(8).sort()).toEqual(['/r8', '/r9']);
    expect(calls.filter((c) => c.startsWith('waited')).sort()).toEqual([...Array(4).fill('waited 1000'), 'waited 2000', 'waited 2000']);
  });

  it('blocks every request of the venue for Retry-After after a 429, then succeeds', async () => {
    server.handle((_req, res) => {
      res.writeHead(429, { 'retry-after': '2' }).end('{"code":-1003}');
    });
    const c = client();
    const err = await c.get({ url: `${server.url}/x`, weight: 1 }, controller.signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestError);
    expect(err).toMatchObject({ status: 429, retryAfterMs: 2000 });
    server.handle((_req, res) => res.end('ok'));
    const next = c.get({ url: `${server.url}/y`, weight: 1 }, controller.signal);
    await eventually(() => clock.sleeping === 1);
    clock.advance(1999);
    await eventually(() => clock.sleeping === 1);
    expect(server.hits).toEqual(['/x']);
    clock.advance(1);
    await expect(next).resolves.toMatchObject({ body: 'ok' });
    expect(calls).toEqual(['request 429', 'rateLimited 429 2000', 'waited 2000', 'request 200']);
  });

  it('treats a Binance 418 ban like a 429, with a default hold-back when Retry-After is missing', async () => {
    server.handle((_req, res) => res.writeHead(418).end());
    const err = await client().get({ url: `${server.url}/x`, weight: 1 }, controller.signal).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 418, retryAfterMs: 7000 });
    expect(calls).toContain('rateLimited 418 7000');
  });

  it('reports a 5xx as RestError without retrying it or blocking the next request', async () => {
    server.handle((_req, res) => res.writeHead(503).end('maintenance'));
    const c = client();
    const err = await c.get({ url: `${server.url}/x`, weight: 1 }, controller.signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestError);
    expect(err).toMatchObject({ status: 503, retryAfterMs: null, body: 'maintenance' });
    server.handle((_req, res) => res.end('ok'));
    await expect(c.get({ url: `${server.url}/y`, weight: 1 }, controller.signal)).resolves.toMatchObject({ body: 'ok' });
    expect(server.hits).toEqual(['/x', '/y']);
  });

  it('counts the used weight the venue reports against the budget', async () => {
    const policy: RateLimitPolicy = { weightPerWindow: 10, windowMs: 60_000, usedWeightHeader: 'x-mbx-used-weight-1m' };
    server.handle((_req, res) => res.writeHead(200, { 'x-mbx-used-weight-1m': '7' }).end('ok'));
    const c = client(policy);
    // Budget 8: the venue says 7 are used after our first request, so one more fits and the third waits.
    await c.get({ url: `${server.url}/1`, weight: 1 }, controller.signal);
    await c.get({ url: `${server.url}/2`, weight: 1 }, controller.signal);
    const third = c.get({ url: `${server.url}/3`, weight: 1 }, controller.signal);
    await eventually(() => clock.sleeping === 1);
    expect(server.hits).toEqual(['/1', '/2']);
    clock.advance(60_000);
    await third;
    expect(server.hits).toEqual(['/1', '/2', '/3']);
  });

  it('gives up on an answer that does not come within the timeout', async () => {
    server.handle(() => undefined);
    const err = await client(POLICY, 100).get({ url: `${server.url}/slow`, weight: 1 }, controller.signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestNetworkError);
    expect(err).toMatchObject({ timedOut: true });
    expect(calls).toEqual(['request timeout']);
  });

  it("leaves nothing attached to the caller's long-lived signal once a request has ended", async () => {
    server.handle((_req, res) => res.end('ok'));
    const daemon = new AbortController();
    const c = client({ weightPerWindow: 1000, windowMs: 1000, usedWeightHeader: null });
    for (let i = 0; i < 50; i++) await c.get({ url: `${server.url}/${i}`, weight: 1 }, daemon.signal);
    // Node keeps every AbortSignal.any() composite of a signal in this set for as long as the signal
    // lives (nodejs/node#55351): one entry per request, for the whole life of the daemon.
    const dependants = Object.getOwnPropertySymbols(daemon.signal).find((s) => s.description === 'kDependantSignals');
    const held = dependants === undefined ? 0 : (daemon.signal as unknown as Record<symbol, Set<unknown>>)[dependants]!.size;
    expect(held).toBe(0);
  });

  it('reports a refused connection as a network error', async () => {
    const port = await freePort();
    const err = await client().get({ url: `http://127.0.0.1:${port}/`, weight: 1 }, controller.signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestNetworkError);
    expect(err).toMatchObject({ timedOut: false });
    expect(calls).toEqual(['request network']);
  });

  it('rejects with the abort reason, in flight or waiting for budget, and lets the line move on', async () => {
    server.handle(() => undefined);
    const c = client({ weightPerWindow: 2, windowMs: 1000, usedWeightHeader: null });
    const inFlight = new AbortController();
    const first = c.get({ url: `${server.url}/hang`, weight: 1 }, inFlight.signal).catch((e: unknown) => e);
    await eventually(() => server.hits.length === 1);
    inFlight.abort(new Error('stopping'));
    expect(await first).toMatchObject({ message: 'stopping' });

    const queued = new AbortController();
    const waiting = c.get({ url: `${server.url}/never`, weight: 1 }, queued.signal).catch((e: unknown) => e);
    server.handle((_req, res) => res.end('ok'));
    const behind = c.get({ url: `${server.url}/behind`, weight: 1 }, controller.signal);
    await eventually(() => clock.sleeping === 1);
    queued.abort(new Error('gone'));
    expect(await waiting).toMatchObject({ message: 'gone' });
    await eventually(() => clock.sleeping === 1);
    clock.advance(1000);
    await expect(behind).resolves.toMatchObject({ body: 'ok' });
    expect(server.hits).toEqual(['/hang', '/behind']);
  });
});
