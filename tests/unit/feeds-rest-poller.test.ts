import { readFileSync } from 'node:fs';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deribitDerivatives } from '../../src/lib/exchanges/deribit_derivatives.js';
import type { PollOptions, RestPoll } from '../../src/lib/exchanges/types.js';
import { RestClient } from '../../src/lib/feeds/rest-client.js';
import { RestPoller, firstRunDelay, nextRunDelay, pollErrorCode, type PollOutcome } from '../../src/lib/feeds/rest-poller.js';
import type { MarketRecord } from '../../src/lib/records.js';
import { ManualClock, eventually, startLocalHttp, type LocalHttp } from '../helpers/local-http.js';
import { fixturePath } from '../helpers/fixtures.js';

const DVOL_BODY = readFileSync(fixturePath('deribit_derivatives', 'volatility_index_rest.jsonl'), 'utf8').split('\n')[0] as string;
const OPTIONS: PollOptions = {
  intervalMs: { funding_rate: 60_000, open_interest: 60_000, lsr_top_position: 300_000, lsr_all_account: 300_000, volatility_index: 60_000 },
  lsrPeriod: '5m',
};
const RETRY = { initialMs: 1000, maxMs: 60_000, jitter: 0 };
const log = pino({ level: 'silent' });

describe('poll scheduling', () => {
  it('spreads first runs over a few seconds, never beyond the interval', () => {
    expect([0, 1, 2].map((i) => firstRunDelay(i, 3, 3000, 60_000))).toEqual([0, 1000, 2000]);
    expect(firstRunDelay(1, 2, 3000, 1000)).toBe(500);
    expect(firstRunDelay(0, 0, 3000, 1000)).toBe(0);
  });

  it('retries failures sooner than the interval with a capped backoff', () => {
    expect([0, 1, 2, 3, 9].map((f) => nextRunDelay(f, 60_000, RETRY))).toEqual([60_000, 1000, 2000, 4000, 60_000]);
    expect(nextRunDelay(5, 10_000, RETRY)).toBe(10_000);
  });

  it('labels errors by what failed', () => {
    expect(pollErrorCode(new Error('bug'))).toBe('internal');
  });
});

describe('RestPoller against a local HTTP server', () => {
  let server: LocalHttp;
  let clock: ManualClock;
  let controller: AbortController;
  let records: MarketRecord[];
  let outcomes: PollOutcome[];
  let order: string[];

  beforeEach(async () => {
    server = await startLocalHttp((_req, res) => res.end(DVOL_BODY));
    clock = new ManualClock();
    controller = new AbortController();
    records = [];
    outcomes = [];
    order = [];
  });
  afterEach(async () => {
    controller.abort();
    await server.close();
  });

  function start(polls: RestPoll[]): Promise<void> {
    const client = new RestClient({ venue: 'deribit_derivatives', policy: deribitDerivatives.rateLimit, clock, timeoutMs: 2000 });
    const poller = new RestPoller({
      client,
      polls,
      log,
      retry: RETRY,
      now: clock.now,
      sleep: clock.sleep,
      onRecords: (r, poll) => {
        order.push(`records ${poll.id}`);
        records.push(...r);
      },
      onResponse: (poll, response) => order.push(`response ${poll.id} ${response.status}`),
      onOutcome: (o) => outcomes.push(o),
    });
    return poller.run(controller.signal);
  }

  const dvolPolls = () => deribitDerivatives.polls(`${server.url}/deribit_derivatives`, ['BTC', 'ETH'], ['volatility_index'], OPTIONS);

  it('runs each poll promptly, spread apart, then at its interval, handing over parsed records', async () => {
    const running = start(dvolPolls());
    await eventually(() => outcomes.length === 1 && clock.sleeping === 2);
    expect(server.hits).toHaveLength(1);
    expect(server.hits[0]).toMatch(/^\/deribit_derivatives\/api\/v2\/public\/get_volatility_index_data\?currency=BTC&/);
    clock.advance(1500);
    await eventually(() => outcomes.length === 2 && clock.sleeping === 2);
    expect(server.hits[1]).toMatch(/currency=ETH/);
    expect(order).toEqual([
      'response deribit_derivatives/volatility_index/btc_usd 200',
      'records deribit_derivatives/volatility_index/btc_usd',
      'response deribit_derivatives/volatility_index/eth_usd 200',
      'records deribit_derivatives/volatility_index/eth_usd',
    ]);
    expect(records.map((r) => [r.symbol, r.eventTime])).toEqual([
      ['BTC-USD', 1598019300000],
      ['BTC-USD', 1598019360000],
      ['ETH-USD', 1598019300000],
      ['ETH-USD', 1598019360000],
    ]);
    expect(outcomes[0]).toMatchObject({ ok: true, records: 2, at: 1_000_000 });
    clock.advance(58_499);
    await eventually(() => clock.sleeping === 2);
    expect(server.hits).toHaveLength(2);
    clock.advance(1);
    await eventually(() => outcomes.length === 3);
    expect(server.hits[2]).toMatch(/currency=BTC/);
    controller.abort();
    await running;
  });

  it('reports failures by code and retries them sooner than the interval, backing off', async () => {
    let status = 503;
    let body = 'maintenance';
    server.handle((_req, res) => res.writeHead(status).end(body));
    const [poll] = dvolPolls();
    const running = start([poll as RestPoll]);
    await eventually(() => outcomes.length === 1 && clock.sleeping === 1);
    expect(outcomes[0]).toMatchObject({ ok: false, code: 'http_503' });

    status = 200;
    body = '{"jsonrpc":"2.0","result":{"data":"none"}}';
    clock.advance(1000);
    await eventually(() => outcomes.length === 2 && clock.sleeping === 1);
    expect(outcomes[1]).toMatchObject({ ok: false, code: 'unexpected_shape' });
    // The malformed body was still handed to onResponse (raw capture keeps what the venue sent).
    expect(order).toEqual(['response deribit_derivatives/volatility_index/btc_usd 200']);

    body = '{"jsonrpc":"2.0","error":{"code":10028,"message":"too_many_requests"}}';
    clock.advance(1999);
    await eventually(() => clock.sleeping === 1);
    expect(outcomes).toHaveLength(2);
    clock.advance(1);
    await eventually(() => outcomes.length === 3 && clock.sleeping === 1);
    expect(outcomes[2]).toMatchObject({ ok: false, code: 'venue_error' });

    body = DVOL_BODY;
    clock.advance(4000);
    await eventually(() => outcomes.length === 4 && clock.sleeping === 1);
    expect(outcomes[3]).toMatchObject({ ok: true, records: 2 });
    controller.abort();
    await running;
  });

  it('reports a vanished server as a network failure and keeps running', async () => {
    const [poll] = dvolPolls();
    await server.close();
    const running = start([poll as RestPoll]);
    await eventually(() => outcomes.length === 1 && clock.sleeping === 1);
    expect(outcomes[0]).toMatchObject({ ok: false, code: 'network' });
    controller.abort();
    await expect(running).resolves.toBeUndefined();
  });

  it('stops when aborted, even with a request in flight', async () => {
    server.handle(() => undefined);
    const running = start(dvolPolls());
    await eventually(() => server.hits.length === 1);
    controller.abort();
    await expect(running).resolves.toBeUndefined();
    expect(outcomes).toEqual([]);
  });
});
