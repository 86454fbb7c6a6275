import { getEventListeners, once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import type { DataType } from '../../src/lib/config/schema.js';
import { MalformedFrameError, isObject, parseFrame, type ControlAction, type FrameSink, type VenueAdapter } from '../../src/lib/exchanges/types.js';
import { readCapture, type CaptureEntry } from '../../src/lib/feeds/raw-capture.js';
import { SnapshotQueue } from '../../src/lib/feeds/snapshot-queue.js';
import { createCollectorMetrics } from '../../src/lib/feeds/collector-metrics.js';
import { resubscribeDelayMs } from '../../src/lib/feeds/book-keeper.js';
import { VenueCollector, splitDataTypes, type VenueCollectorOptions } from '../../src/lib/feeds/venue-collector.js';
import type { BookMessage, SequenceVerdict } from '../../src/lib/orderbook/types.js';
import { COLLECTOR_STOPPED_DETAIL, type FundingRateRecord, type MarketRecord, type OrderbookGapRecord, type OrderbookRecord, type TradeRecord } from '../../src/lib/records.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: 'silent' });

/**
 * A small venue for transport tests. Frames: `{"k":"trade","s":..,"id":..}`,
 * `{"k":"book","s":..,"action":"snapshot"|"update","u":..,"pu":..,"b":[[p,q]],"a":[[p,q]]}`,
 * `{"k":"notice"}` (leave), `{"k":"test_request"}` (answer), anything else `{"k":"ack"}`.
 */
function testAdapter(source: 'rest' | 'stream'): VenueAdapter {
  const bookMessage = (v: Record<string, unknown>, action: 'snapshot' | 'update', receiveTime: number): BookMessage => ({
    venue: 'binance_spot',
    marketType: 'spot',
    symbol: `${String(v.s).slice(0, 3)}-USDT`,
    instrument: String(v.s),
    action,
    firstUpdateId: action === 'update' ? Number(v.u) : null,
    lastUpdateId: Number(v.u),
    prevUpdateId: action === 'update' ? Number(v.pu) : null,
    checksum: null,
    bids: v.b as [string, string][],
    asks: v.a as [string, string][],
    eventTime: receiveTime,
    receiveTime,
  });
  const chained = (last: number, m: BookMessage): SequenceVerdict =>
    (m.lastUpdateId ?? 0) <= last ? { kind: 'skip' } : m.prevUpdateId === last ? { kind: 'apply' } : { kind: 'gap', detail: `pu ${m.prevUpdateId} after ${last}` };
  return {
    venue: 'binance_spot',
    marketType: 'spot',
    wsDataTypes: ['trade', 'orderbook'],
    polledDataTypes: ['funding_rate'],
    tradeIds: 'contiguous',
    history: {},
    instrumentOf: (symbol) => symbol,
    connections: (baseUrl, _symbols, dataTypes) => [
      { id: 'test/0', url: `${baseUrl}/ws`, dataTypes, subscribeMessages: ['sub'], maxConnectionAgeMs: Infinity, keepalive: null, staleAfterMs: null },
    ],
    normalize(frame: string, receiveTime: number, out: FrameSink): void {
      const v = parseFrame(frame);
      if (!isObject(v)) throw new MalformedFrameError('unexpected_shape', 'not an object');
      if (v.k === 'trade') {
        const trade: TradeRecord = {
          dataType: 'trade',
          venue: 'binance_spot',
          marketType: 'spot',
          symbol: `${String(v.s).slice(0, 3)}-USDT`,
          instrument: String(v.s),
          eventTime: receiveTime,
          receiveTime,
          tradeId: String(v.id),
          price: '1',
          quantity: '1',
          side: 'buy',
        };
        out.record(trade);
      } else if (v.k === 'book') {
        out.book(bookMessage(v, v.action === 'snapshot' ? 'snapshot' : 'update', receiveTime));
      }
    },
    control(frame: string): ControlAction {
      if (frame.includes('"notice"')) return { kind: 'reconnect', reason: 'notice' };
      if (frame.includes('"test_request"')) return { kind: 'send', message: 'test_answer' };
      return { kind: 'none' };
    },
    polls: (restBaseUrl, symbols, dataTypes, options) =>
      dataTypes.flatMap((dataType) =>
        symbols.map((s) => ({
          id: `test/${dataType}/${s}`,
          url: `${restBaseUrl}/funding?symbol=${s}`,
          weight: 1,
          dataType,
          instrument: s,
          intervalMs: options.intervalMs[dataType],
          parse(body: string, receiveTime: number): MarketRecord[] {
            const v = parseFrame(body, 'funding_rate');
            if (!isObject(v) || typeof v.rate !== 'string') throw new MalformedFrameError('unexpected_shape', 'no rate', 'funding_rate');
            const r: FundingRateRecord = {
              dataType: 'funding_rate',
              venue: 'binance_spot',
              marketType: 'spot',
              symbol: `${s.slice(0, 3)}-USDT`,
              instrument: s,
              eventTime: Number(v.time),
              receiveTime,
              fundingRate: v.rate,
              nextFundingTime: 0,
              markPrice: null,
            };
            return [r];
          },
        })),
      ),
    rateLimit: { weightPerWindow: 1000, windowMs: 60_000, usedWeightHeader: null },
    book: {
      rules: { firstAfterSnapshot: (snap, m) => ((m.lastUpdateId ?? 0) <= snap ? { kind: 'skip' } : chained(snap, m)), next: chained },
      source,
      snapshotRequest: (base, instrument) => ({ url: `${base}/depth?symbol=${instrument}`, weight: 5 }),
      parseSnapshot: (body, _instrument, receiveTime) => {
        const v = parseFrame(body, 'orderbook');
        if (!isObject(v)) throw new MalformedFrameError('unexpected_shape', 'not an object', 'orderbook');
        return bookMessage(v, 'snapshot', receiveTime);
      },
      resubscribe: (instrument) => [`resub:${instrument}`],
    },
  };
}

/** The venue's side: a book per instrument changing every few ms, trades, snapshots over REST or in-stream. */
class TestVenue {
  readonly url: string;
  readonly received: string[] = [];
  readonly snapshotRequests: { instrument: string; at: number }[] = [];
  /** Path and query of every REST request, in arrival order. */
  readonly restRequests: string[] = [];
  sentTrades = 0;
  seq = new Map<string, number>();
  /** Answer REST snapshots with this status instead (e.g. 429). */
  snapshotStatus = 200;
  fundingStatus = 200;
  /** Answer contract value requests with this status instead. */
  contractStatus = 200;
  /** Instruments the `/contracts` listing holds. */
  listedContracts: string[] = [];
  /** Instruments whose funding requests fail with 400 (a symbol the venue does not list). */
  readonly unknownFunding = new Set<string>();
  /** Acknowledge subscriptions, then send nothing (the Binance routing failure). */
  silent = false;
  /** Stream snapshots whose best bid is above the best ask (a venue glitch that every resubscribe repeats). */
  crossedSnapshots = false;
  /** A subscribe brings no snapshot (the venue stalled right then); a resubscribe still does. */
  noSnapshotOnSubscribe = false;
  private readonly clients = new Set<WebSocket>();
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    private readonly source: 'rest' | 'stream',
  ) {
    this.url = `127.0.0.1:${(http.address() as AddressInfo).port}`;
  }

  static async start(o: { source: 'rest' | 'stream'; instruments: string[]; everyMs?: number }): Promise<TestVenue> {
    const http = createServer();
    const wss = new WebSocketServer({ server: http });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    const venue = new TestVenue(http, wss, o.source);
    for (const i of o.instruments) venue.seq.set(i, 1000);
    http.on('request', (req, res) => venue.rest(req.url ?? '', res));
    wss.on('connection', (ws) => venue.accept(ws));
    venue.timer = setInterval(() => venue.step(), o.everyMs ?? 5);
    return venue;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  /** Trades the venue makes but never sends (frames lost on the way). */
  skipTrades(n: number): void {
    this.sentTrades += n;
  }

  /** Skip one update of `instrument`: the next one does not chain. */
  gap(instrument: string): void {
    this.seq.set(instrument, (this.seq.get(instrument) ?? 0) + 1);
  }

  dropConnections(): void {
    for (const c of this.clients) c.terminate();
  }

  broadcast(frame: string): void {
    for (const c of this.clients) c.send(frame);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private snapshot(instrument: string): Record<string, unknown> {
    const levels = (from: number, step: number) => [0, 1, 2, 3, 4].map((i) => [String(from + step * i), '1']);
    return { k: 'book', action: 'snapshot', s: instrument, u: this.seq.get(instrument), b: levels(this.crossedSnapshots ? 103 : 99, -1), a: levels(101, 1) };
  }

  private step(): void {
    if (this.silent) return;
    for (const [instrument, last] of this.seq) {
      const u = last + 1;
      this.seq.set(instrument, u);
      const frame = JSON.stringify({ k: 'book', action: 'update', s: instrument, u, pu: last, b: [[String(99 - (u % 5)), String(u)]], a: [[String(101 + (u % 5)), String(u)]] });
      for (const c of this.clients) c.send(frame);
    }
    this.sentTrades++;
    const trade = JSON.stringify({ k: 'trade', s: 'AAAUSDT', id: this.sentTrades });
    for (const c of this.clients) c.send(trade);
  }

  private accept(ws: WebSocket): void {
    ws.on('message', (m: Buffer) => {
      const text = m.toString();
      this.received.push(text);
      ws.send('{"k":"ack"}');
      if (text === 'sub') {
        this.clients.add(ws);
        if (this.source === 'stream' && !this.silent && !this.noSnapshotOnSubscribe) for (const i of this.seq.keys()) ws.send(JSON.stringify(this.snapshot(i)));
      } else if (text.startsWith('resub:')) {
        ws.send(JSON.stringify(this.snapshot(text.slice('resub:'.length))));
      }
    });
    ws.on('close', () => this.clients.delete(ws));
  }

  private rest(path: string, res: import('node:http').ServerResponse): void {
    this.restRequests.push(path);
    const url = new URL(path, 'http://x');
    const instrument = url.searchParams.get('symbol') ?? '';
    if (url.pathname.endsWith('/depth')) {
      this.snapshotRequests.push({ instrument, at: Date.now() });
      if (this.snapshotStatus !== 200) {
        res.writeHead(this.snapshotStatus, { 'retry-after': '1' }).end('{"code":-1003}');
        return;
      }
      res.end(JSON.stringify(this.snapshot(instrument)));
      return;
    }
    if (url.pathname.endsWith('/contracts')) {
      // The venue's listing of its contracts: only those it is told to list.
      res.end(JSON.stringify({ values: Object.fromEntries(this.listedContracts.map((i) => [i, '0.01'])) }));
      return;
    }
    if (url.pathname.endsWith('/contract')) {
      if (this.contractStatus !== 200) res.writeHead(this.contractStatus).end('busy');
      else res.end(JSON.stringify({ value: '0.01' }));
      return;
    }
    if (url.pathname.endsWith('/funding')) {
      if (this.unknownFunding.has(instrument)) res.writeHead(400).end('{"code":-1121,"msg":"Invalid symbol."}');
      else if (this.fundingStatus !== 200) res.writeHead(this.fundingStatus).end('oops');
      else res.end(JSON.stringify({ rate: '0.0001', time: 1_700_000_000_000 }));
      return;
    }
    res.writeHead(404).end();
  }
}


function collectorFor(venue: TestVenue, o: Partial<VenueCollectorOptions> & { source: 'rest' | 'stream'; symbols: string[] }) {
  const registry = new Registry();
  const published: MarketRecord[] = [];
  const vc = new VenueCollector({
    adapter: o.adapter ?? testAdapter(o.source),
    wsBaseUrl: `ws://${venue.url}`,
    restBaseUrl: `http://${venue.url}`,
    symbols: o.symbols,
    dataTypes: o.dataTypes ?? ['trade', 'orderbook'],
    sink: {
      publishBatch: async (_subject, records, _max, onStored) => {
        published.push(...records);
        onStored?.(0, records.length);
      },
    },
    resume: o.resume,
    metrics: createCollectorMetrics(registry),
    log,
    staleAfterMs: 10_000,
    reconnect: { initialMs: 20, maxMs: 100 },
    startupGraceMs: o.startupGraceMs ?? 10_000,
    orderbook: o.orderbook ?? { depth: 3, maxSnapshotsPerSecond: 1000 },
    polls: { intervalMs: { funding_rate: 200, open_interest: 1000, lsr_top_position: 1000, lsr_all_account: 1000, volatility_index: 1000 }, lsrPeriod: '5m' },
    capture: o.capture ?? null,
    snapshotRequestsPerSecond: o.snapshotRequestsPerSecond ?? 50,
  });
  const ac = new AbortController();
  const running = vc.run(ac.signal);
  const stop = async () => {
    ac.abort();
    await running;
  };
  const books = (instrument: string) => published.filter((r): r is OrderbookRecord => r.dataType === 'orderbook' && r.instrument === instrument);
  const allGaps = () => published.filter((r): r is OrderbookGapRecord => r.dataType === 'orderbook_gap');
  /** Gaps while running; stopMarkers are the ones stop() leaves. */
  const gaps = () => allGaps().filter((g) => g.detail !== COLLECTOR_STOPPED_DETAIL);
  const stopMarkers = () => allGaps().filter((g) => g.detail === COLLECTOR_STOPPED_DETAIL);
  return { vc, registry, published, stop, books, gaps, stopMarkers, signal: ac.signal };
}

function expectValidBook(r: OrderbookRecord | undefined): void {
  expect(r).toBeDefined();
  expect(Number(r?.bestBidPrice)).toBeLessThan(Number(r?.bestAskPrice));
  expect(r?.bids.length).toBe(3);
}

describe('VenueCollector', () => {
  let venue: TestVenue | null = null;
  afterEach(async () => {
    await venue?.close();
    venue = null;
  });

  it('syncs a book from a REST snapshot, publishes a gap record and resyncs over REST after a sequence gap', async () => {
    venue = await TestVenue.start({ source: 'rest', instruments: ['AAAUSDT'] });
    const c = collectorFor(venue, { source: 'rest', symbols: ['AAAUSDT'] });
    await waitFor(() => c.books('AAAUSDT').length > 20);
    expect(venue.snapshotRequests).toHaveLength(1);
    expectValidBook(c.books('AAAUSDT').at(-1));

    venue.gap('AAAUSDT');
    await waitFor(() => c.gaps().length === 1 && venue!.snapshotRequests.length === 2);
    const resumedFrom = c.published.length;
    await waitFor(() => c.books('AAAUSDT').length > 0 && c.published.slice(resumedFrom).some((r) => r.dataType === 'orderbook'));
    const [book] = c.vc.health().books;
    await c.stop();

    expect(c.gaps()[0]).toMatchObject({ reason: 'sequence_gap', instrument: 'AAAUSDT', symbol: 'AAA-USDT' });
    expectValidBook(c.books('AAAUSDT').at(-1));
    const ids = c.books('AAAUSDT').map((r) => r.lastUpdateId);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const metrics = await c.registry.metrics();
    expect(metrics).toMatch(/mprism_collector_orderbook_resyncs_total\{venue="binance_spot",symbol="AAA-USDT",reason="sequence_gap"\} 1/);
    expect(metrics).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="orderbook",code="sequence_gap"\} 1/);
    expect(metrics).toMatch(/mprism_collector_rest_requests_total\{venue="binance_spot",outcome="200"\} 2/);
    expect(book).toMatchObject({ instrument: 'AAAUSDT', state: 'synced', resyncs: 1, gaps: 1, bidLevels: 5, askLevels: 5, connection: 'test/0' });
    expect(book?.lastUpdateId).toBeGreaterThan(1000);
  });

  it('resyncs a stream-snapshot book by resubscribing on the connection that delivered it', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: ['AAAUSDT', 'BBBUSDT'] });
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT', 'BBBUSDT'] });
    await waitFor(() => c.books('AAAUSDT').length > 10 && c.books('BBBUSDT').length > 10);
    venue.gap('BBBUSDT');
    await waitFor(() => venue!.received.includes('resub:BBBUSDT'));
    const after = c.published.length;
    await waitFor(() => c.published.slice(after).some((r) => r.dataType === 'orderbook' && r.instrument === 'BBBUSDT'));
    await c.stop();
    expect(venue.received.filter((m) => m.startsWith('resub:'))).toEqual(['resub:BBBUSDT']);
    expect(c.gaps().map((g) => [g.instrument, g.reason])).toEqual([['BBBUSDT', 'sequence_gap']]);
    expect(venue.snapshotRequests).toHaveLength(0);
    expectValidBook(c.books('BBBUSDT').at(-1));
    expect(c.vc.health().books.map((b) => [b.instrument, b.resyncs])).toEqual([
      ['AAAUSDT', 0],
      ['BBBUSDT', 1],
    ]);
  });

  it('resubscribes a stream-snapshot book that got no snapshot after a reconnect, instead of waiting for the next disconnect', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: ['AAAUSDT'] });
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'] });
    await waitFor(() => c.books('AAAUSDT').length > 3);
    venue.noSnapshotOnSubscribe = true;
    venue.dropConnections();
    await waitFor(() => venue!.received.includes('resub:AAAUSDT'), 15_000);
    const after = c.published.length;
    await waitFor(() => c.published.slice(after).some((r) => r.dataType === 'orderbook'));
    await c.stop();
    // One resubscribe, 10 s after the reconnect's subscribe went unanswered, brought the book back.
    expect(venue.received.filter((m) => m === 'resub:AAAUSDT')).toHaveLength(1);
  }, 20_000);

  it('records a hole where trade ids jump, with the missing ids, and none while they follow on', async () => {
    venue = await TestVenue.start({ source: 'rest', instruments: [] });
    const c = collectorFor(venue, { source: 'rest', symbols: ['AAAUSDT'], dataTypes: ['trade'] });
    await waitFor(() => c.published.filter((r) => r.dataType === 'trade').length > 20);
    venue.skipTrades(7);
    await waitFor(() => c.published.some((r) => r.dataType === 'stream_hole'));
    await c.stop();
    const holes = c.published.filter((r) => r.dataType === 'stream_hole');
    expect(holes).toHaveLength(1);
    expect(holes[0]).toMatchObject({ holeDataType: 'trade', instrument: 'AAAUSDT', cause: 'id_gap', state: 'open', missingCount: 7 });
    const first = Number((holes[0] as { firstMissingId: string }).firstMissingId);
    expect((holes[0] as { lastMissingId: string }).lastMissingId).toBe(String(first + 6));
    expect(await c.registry.metrics()).toMatch(/mprism_collector_holes_total\{venue="binance_spot",data_type="trade",cause="id_gap"\} 1/);
  });

  it('records the trades a lost connection missed as a disconnect hole, and the downtime of a restart from the coverage it left', async () => {
    venue = await TestVenue.start({ source: 'rest', instruments: [] });
    const c = collectorFor(venue, { source: 'rest', symbols: ['AAAUSDT'], dataTypes: ['trade'] });
    await waitFor(() => c.published.filter((r) => r.dataType === 'trade').length > 20, 20_000, 10, 'trades before the drop');
    venue.dropConnections();
    // Trades the venue makes while the collector reconnects (however quick the reconnect).
    venue.skipTrades(3);
    await waitFor(() => c.published.some((r) => r.dataType === 'stream_hole'), 20_000, 10, () => `a disconnect hole (${JSON.stringify(c.vc.health().connections)})`);
    await c.stop();
    const hole = c.published.find((r) => r.dataType === 'stream_hole');
    expect(hole).toMatchObject({ cause: 'disconnect', state: 'open' });
    const resume = c.vc.coverageState();
    const last = resume.find((s) => s.identity.dataType === 'trade')?.last;
    expect(last?.id).toBe((c.published.filter((r): r is TradeRecord => r.dataType === 'trade').at(-1) as TradeRecord).tradeId);

    // The next run starts from what this one stored: everything sent in between is one hole (and
    // some is: a restart quicker than the venue's next trade would rightly find none).
    venue.skipTrades(5);
    const next = collectorFor(venue, { source: 'rest', symbols: ['AAAUSDT'], dataTypes: ['trade'], resume });
    await waitFor(() => next.published.some((r) => r.dataType === 'stream_hole'), 20_000, 10, () => `the downtime hole: ${JSON.stringify(next.published.slice(0, 3))} resumed from ${JSON.stringify(resume)}; ${JSON.stringify(next.vc.health().connections)}`);
    await next.stop();
    const downtime = next.published.find((r) => r.dataType === 'stream_hole');
    expect(downtime).toMatchObject({ cause: 'collector_down', firstMissingId: String(Number(last?.id) + 1) });
  });

  it('spreads the snapshot requests of many books and retries them after a 429', async () => {
    const instruments = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT', 'DDDUSDT', 'EEEUSDT', 'FFFUSDT'];
    venue = await TestVenue.start({ source: 'rest', instruments });
    venue.snapshotStatus = 429;
    const c = collectorFor(venue, { source: 'rest', symbols: instruments, snapshotRequestsPerSecond: 20 });
    await waitFor(() => venue!.snapshotRequests.length >= 1);
    venue.snapshotStatus = 200;
    await waitFor(() => instruments.every((i) => c.books(i).length > 0));
    await c.stop();
    const times = venue.snapshotRequests.map((r) => r.at);
    // 20 per second and 2 in flight: never three requests within 50 ms, not even when the 429's
    // Retry-After (1 s) releases the ones held back.
    for (let i = 2; i < times.length; i++) expect(times[i]! - times[i - 2]!).toBeGreaterThanOrEqual(40);
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(1000);
    expect(c.gaps().length).toBeGreaterThanOrEqual(1);
    expect(c.gaps().every((g) => g.reason === 'snapshot_failed')).toBe(true);
    const metrics = await c.registry.metrics();
    expect(metrics).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="orderbook",code="http_429"\} [1-9]/);
    expect(metrics).toMatch(/mprism_collector_rest_rate_limited_total\{venue="binance_spot",status="429"\} [1-9]/);
  });

  it('backs off refetching a REST snapshot that keeps coming back crossed, and syncs once a good one comes', async () => {
    venue = await TestVenue.start({ source: 'rest', instruments: ['AAAUSDT'] });
    venue.crossedSnapshots = true;
    const c = collectorFor(venue, { source: 'rest', symbols: ['AAAUSDT'], snapshotRequestsPerSecond: 50 });
    await waitFor(() => venue!.snapshotRequests.length >= 1);
    await new Promise((r) => setTimeout(r, 2000));
    // Backoff from 0.5 s doubling: at most ~4 in 2 s, where the queue alone would allow 100.
    const crossedRequests = venue.snapshotRequests.length;
    venue.crossedSnapshots = false;
    await waitFor(() => c.books('AAAUSDT').length > 0, 20_000);
    await c.stop();
    expect(crossedRequests).toBeGreaterThanOrEqual(2);
    expect(crossedRequests).toBeLessThanOrEqual(6);
    expect(new Set(c.gaps().map((g) => g.reason))).toEqual(new Set(['crossed_book']));
    expect(await c.registry.metrics()).toMatch(/mprism_collector_orderbook_resyncs_total\{venue="binance_spot",symbol="AAA-USDT",reason="crossed_book"\} [1-9]/);
    expectValidBook(c.books('AAAUSDT').at(-1));
  });

  it('paces resubscribes when every fresh snapshot fails again, instead of resubscribing at round-trip speed', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: ['AAAUSDT'] });
    venue.crossedSnapshots = true;
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'] });
    await waitFor(() => venue!.received.includes('resub:AAAUSDT'));
    await new Promise((r) => setTimeout(r, 1000));
    await c.stop();
    // OKX allows 480 (un)subscribes per connection per hour; the first retry waits 10 s.
    expect(venue.received.filter((m) => m === 'resub:AAAUSDT')).toHaveLength(1);
    expect(c.gaps().map((g) => g.reason)).toEqual(['crossed_book']);
    expect(c.books('AAAUSDT')).toEqual([]);
  });

  it('opens the feeds only once the contract value is known, and publishes trade and book sizes in coins', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: ['AAAUSDT'] });
    venue.contractStatus = 503;
    const adapter: VenueAdapter = {
      ...testAdapter('stream'),
      contracts: {
        request: (base, instrument) => ({ url: `${base}/contract?symbol=${instrument}`, weight: 1 }),
        reader: (body) => () => String((JSON.parse(body) as { value: string }).value),
      },
    };
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'], adapter });
    await waitFor(() => venue!.restRequests.some((r) => r.startsWith('/contract')));
    await new Promise((r) => setTimeout(r, 300));
    // No connection and no record while the value is unknown, and health says why.
    expect(venue.received).toEqual([]);
    expect(c.published).toEqual([]);
    const trade = c.vc.health().streams.find((s) => s.dataType === 'trade');
    expect(trade?.lastError).toMatch(/^contract value unknown, http_503: /);
    expect(await c.registry.metrics()).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="trade",code="http_503"\} [1-9]/);

    venue.contractStatus = 200;
    // Updates set levels to u >= 1000 contracts, which is u / 100 >= 10 coins: wait for one of those.
    const sizes = () => c.books('AAAUSDT').flatMap((r) => [...r.bids, ...r.asks].map(([, q]) => Number(q)));
    await waitFor(() => c.published.some((r) => r.dataType === 'trade') && sizes().some((q) => q >= 10), 10_000);
    await c.stop();
    expect(c.vc.health().streams.find((s) => s.dataType === 'trade')?.lastError).toBeNull();
    // The venue sends quantity 1 and book sizes of whole contracts; each contract is 0.01 coins.
    const trades = c.published.filter((r): r is TradeRecord => r.dataType === 'trade');
    expect(new Set(trades.map((t) => t.quantity))).toEqual(new Set(['0.01']));
    const book = c.books('AAAUSDT')[0];
    expect(book?.bids[0]).toEqual(['99', '0.01']);
    // ...and never the raw count of contracts.
    expect(sizes().every((q) => q < 1000)).toBe(true);
  });

  it('takes contract values from one listing of every contract, asking only for what it lacks one by one', async () => {
    const instruments = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT'];
    venue = await TestVenue.start({ source: 'stream', instruments });
    venue.listedContracts = ['AAAUSDT', 'CCCUSDT'];
    const adapter: VenueAdapter = {
      ...testAdapter('stream'),
      contracts: {
        request: (base, instrument) => ({ url: `${base}/contract?symbol=${instrument}`, weight: 1 }),
        listAll: (base) => ({ url: `${base}/contracts`, weight: 1 }),
        reader: (body) => {
          const answer = JSON.parse(body) as { value?: string; values?: Record<string, string> };
          return (instrument) => {
            if (answer.values === undefined) return String(answer.value);
            const value = answer.values[instrument];
            if (value === undefined) throw new MalformedFrameError('unknown_symbol', `no contract ${instrument}`);
            return value;
          };
        },
      },
    };
    const c = collectorFor(venue, { source: 'stream', symbols: instruments, adapter });
    // Every instrument's feed opened (its books are published), each sized with its value.
    await waitFor(() => instruments.every((i) => c.books(i).length > 0), 10_000);
    await c.stop();
    expect(venue.restRequests.filter((r) => r.startsWith('/contract'))).toEqual(['/contracts', '/contract?symbol=BBBUSDT']);
    expect(instruments.map((i) => c.books(i)[0]?.bids[0])).toEqual(instruments.map(() => ['99', '0.01']));
  });

  it('throttles published books per symbol and publishes the last change once the interval has passed', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: ['AAAUSDT'], everyMs: 2 });
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'], orderbook: { depth: 3, maxSnapshotsPerSecond: 5 } });
    await waitFor(() => c.books('AAAUSDT').length > 0);
    const firstAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    venue.stop();
    const lastSent = venue.seq.get('AAAUSDT');
    await new Promise((r) => setTimeout(r, 400));
    await c.stop();
    const elapsedMs = Date.now() - firstAt;
    const books = c.books('AAAUSDT');
    const updates = lastSent! - books[0]!.lastUpdateId!;
    // Hundreds of updates, at most one book per 200 ms after the snapshot published at once (bounds
    // from the measured time, so a slow machine does not fail it), and the last change is not held back.
    expect(updates).toBeGreaterThan(50);
    expect(books.length).toBeGreaterThanOrEqual(3);
    expect(books.length).toBeLessThanOrEqual(2 + Math.ceil(elapsedMs / 200));
    expect(books.at(-1)?.lastUpdateId).toBe(lastSent);
  });

  it('publishes books at the rate the collector sets under load, and at full rate once it is restored', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: ['AAAUSDT'], everyMs: 2 });
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'], orderbook: { depth: 3, maxSnapshotsPerSecond: 1000 } });
    await waitFor(() => c.books('AAAUSDT').length > 0);
    c.vc.setBookSnapshotRate(2);
    const thinnedAt = Date.now();
    const before = c.books('AAAUSDT').length;
    await new Promise((r) => setTimeout(r, 1000));
    const thinned = c.books('AAAUSDT').length - before;
    const thinnedMs = Date.now() - thinnedAt;
    c.vc.setBookSnapshotRate(1000);
    const restoredFrom = c.books('AAAUSDT').length;
    await new Promise((r) => setTimeout(r, 500));
    const restored = c.books('AAAUSDT').length - restoredFrom;
    await c.stop();
    // At most one per 500 ms (plus one already due), against hundreds of updates a second.
    expect(thinned).toBeGreaterThanOrEqual(1);
    expect(thinned).toBeLessThanOrEqual(2 + Math.ceil(thinnedMs / 500));
    expect(restored).toBeGreaterThan(10);
  });

  it('resets the books of a lost connection with a gap record and resyncs them after the reconnect', async () => {
    venue = await TestVenue.start({ source: 'rest', instruments: ['AAAUSDT'] });
    const c = collectorFor(venue, { source: 'rest', symbols: ['AAAUSDT'] });
    await waitFor(() => c.books('AAAUSDT').length > 5);
    venue.dropConnections();
    await waitFor(() => venue!.snapshotRequests.length === 2);
    const after = c.published.length;
    await waitFor(() => c.published.slice(after).some((r) => r.dataType === 'orderbook'));
    await c.stop();
    expect(c.gaps().map((g) => [g.reason, g.detail])).toEqual([['disconnect', 'connection closed']]);
    expect(await c.registry.metrics()).toMatch(/mprism_collector_orderbook_resyncs_total\{venue="binance_spot",symbol="AAA-USDT",reason="disconnect"\} 1/);
    // Stopping leaves the synced book one more marker, the last record published; it is no resync.
    expect(c.stopMarkers()).toMatchObject([{ reason: 'disconnect', instrument: 'AAAUSDT' }]);
    expect(c.published.at(-1)).toBe(c.stopMarkers()[0]);
    expect(c.vc.health().connections[0]).toMatchObject({ id: 'test/0', connects: 2, reconnects: 1 });
  });

  it('answers venue requests (ControlAction send) and replaces the connection on a venue notice without losing trades', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: [] });
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'], dataTypes: ['trade'] });
    await waitFor(() => c.published.length > 20);
    venue.broadcast('{"k":"test_request"}');
    venue.broadcast('{"k":"notice"}');
    await waitFor(() => c.vc.health().connections[0]?.handovers === 1);
    const after = c.published.length;
    await waitFor(() => c.published.length > after + 50);
    await c.stop();
    expect(venue.received).toContain('test_answer');
    const ids = [...new Set(c.published.map((r) => Number((r as TradeRecord).tradeId)))].sort((a, b) => a - b);
    expect(ids.at(-1)! - ids[0]! + 1).toBe(ids.length);
    expect(c.vc.health().connections[0]).toMatchObject({ connects: 2, reconnects: 1, handovers: 1, lastDisconnectReason: 'notice' });
  });

  it('reports an acknowledged but silent subscription as stale while its socket stays connected', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: ['AAAUSDT'] });
    venue.silent = true;
    // A grace long enough that even a slow machine sees the socket open within it.
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'], startupGraceMs: 1500 });
    await waitFor(() => c.vc.health().connections[0]?.state === 'open');
    expect(c.vc.health().streams.map((s) => s.status)).toEqual(['starting', 'starting']);
    await new Promise((r) => setTimeout(r, 1600));
    const health = c.vc.health();
    await c.stop();
    expect(health.connections[0]).toMatchObject({ state: 'open', reconnects: 0 });
    const silent = [{ instrument: 'AAAUSDT', status: 'stale', lastSuccessAt: null, ageSeconds: null, lastError: null }];
    expect(health.streams).toEqual([
      { venue: 'binance_spot', dataType: 'trade', source: 'ws', status: 'stale', lastSuccessAt: null, ageSeconds: null, lastError: null, instruments: silent },
      { venue: 'binance_spot', dataType: 'orderbook', source: 'ws', status: 'stale', lastSuccessAt: null, ageSeconds: null, lastError: null, instruments: silent },
    ]);
  });

  it('reports a stream stale when one of its instruments is silent while another flows, naming that instrument', async () => {
    // The test venue trades AAAUSDT only, and books both.
    venue = await TestVenue.start({ source: 'stream', instruments: ['AAAUSDT', 'BBBUSDT'] });
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT', 'BBBUSDT'], startupGraceMs: 300 });
    await waitFor(() => c.books('BBBUSDT').length > 0 && c.published.some((r) => r.dataType === 'trade'));
    await new Promise((r) => setTimeout(r, 400)); // past the grace period
    const health = c.vc.health();
    await c.stop();
    const trade = health.streams.find((s) => s.dataType === 'trade')!;
    expect(trade.status).toBe('stale');
    expect(trade.ageSeconds).not.toBeNull();
    expect(trade.instruments.map((i) => [i.instrument, i.status])).toEqual([
      ['AAAUSDT', 'fresh'],
      ['BBBUSDT', 'stale'],
    ]);
    const book = health.streams.find((s) => s.dataType === 'orderbook')!;
    expect(book.status).toBe('fresh');
    expect(book.instruments.map((i) => i.status)).toEqual(['fresh', 'fresh']);
    const metrics = await c.registry.metrics();
    expect(metrics).toMatch(/mprism_collector_instrument_last_success_timestamp_seconds\{venue="binance_spot",data_type="trade",instrument="AAAUSDT"\} \d/);
    expect(metrics).not.toMatch(/instrument_last_success_timestamp_seconds\{venue="binance_spot",data_type="trade",instrument="BBBUSDT"/);
  });

  it('waits on the daemon signal from every feed, poll and snapshot of many symbols without a listener-leak warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const symbols = Array.from({ length: 15 }, (_, i) => `S${i}USDT`);
      venue = await TestVenue.start({ source: 'rest', instruments: symbols });
      const c = collectorFor(venue, { source: 'rest', symbols, dataTypes: ['orderbook', 'funding_rate'] });
      await waitFor(() => symbols.every((s) => c.books(s).length > 0 && c.published.some((r) => r.dataType === 'funding_rate' && r.instrument === c.books(s)[0]!.instrument)));
      // The collector hangs one listener on the daemon's signal; its waits hang on its own bounded one.
      expect(getEventListeners(c.signal, 'abort')).toHaveLength(1);
      await c.stop();
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('captures every WebSocket frame and REST body with its receive time when capture is on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mprism-capture-'));
    try {
      venue = await TestVenue.start({ source: 'rest', instruments: ['AAAUSDT'] });
      const c = collectorFor(venue, { source: 'rest', symbols: ['AAAUSDT'], dataTypes: ['orderbook', 'funding_rate'], capture: { dir, maxFileBytes: 1 << 20 } });
      // Wait on what was received, not on time: a loaded machine may deliver only a few frames before the first poll.
      await waitFor(() => c.books('AAAUSDT').length > 5 && c.published.some((r) => r.dataType === 'funding_rate'));
      await c.stop();
      const bookMessages = (await c.registry.getSingleMetric('mprism_collector_messages_total')!.get()).values.find((v) => v.labels.data_type === 'orderbook')!.value;
      const [file] = readdirSync(dir);
      const entries: CaptureEntry[] = [];
      for await (const e of readCapture(join(dir, file!))) entries.push(e);
      expect(entries.find((e) => e.kind === 'ws')).toMatchObject({ venue: 'binance_spot', conn: 'test/0', url: `ws://${venue.url}/ws`, data: '{"k":"ack"}' });
      expect(entries.filter((e) => e.kind === 'rest').map((e) => e.conn)).toEqual(expect.arrayContaining(['binance_spot/snapshot/AAAUSDT', 'test/funding_rate/AAAUSDT']));
      // Every frame: each depth frame the collector counted is in the capture (trade frames too, unsubscribed here).
      expect(entries.filter((e) => e.kind === 'ws' && e.data.includes('"k":"book"')).length).toBe(bookMessages);
      expect(entries.some((e) => e.kind === 'ws' && e.data.includes('"k":"trade"'))).toBe(true);
      expect(entries.every((e, i) => i === 0 || e.t >= entries[i - 1]!.t)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('captures the URL a poll actually requested when its URL is built on every read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mprism-capture-'));
    try {
      venue = await TestVenue.start({ source: 'stream', instruments: [] });
      const base = testAdapter('stream');
      let reads = 0;
      // Like Deribit's DVOL poll: a time window ending at the moment of the read.
      const adapter: VenueAdapter = {
        ...base,
        polls: (...args) =>
          base.polls(...args).map((poll) => ({
            ...poll,
            get url() {
              return `${poll.url}&read=${++reads}`;
            },
          })),
      };
      const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'], dataTypes: ['funding_rate'], adapter, capture: { dir, maxFileBytes: 1 << 20 } });
      await waitFor(() => c.published.length >= 2);
      await c.stop();
      const [file] = readdirSync(dir);
      const captured: string[] = [];
      for await (const e of readCapture(join(dir, file!))) if (e.kind === 'rest') captured.push(e.url);
      expect(captured.length).toBeGreaterThanOrEqual(2);
      for (const url of captured) expect(venue.restRequests.map((p) => `http://${venue!.url}${p}`)).toContain(url);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a polled type stale when its successful answers carry no records (answered but empty)', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: [] });
    const base = testAdapter('stream');
    const adapter: VenueAdapter = { ...base, polls: (...args) => base.polls(...args).map((poll) => ({ ...poll, parse: () => [] })) };
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'], dataTypes: ['funding_rate'], adapter, startupGraceMs: 300 });
    await waitFor(() => venue!.restRequests.length >= 2);
    await new Promise((r) => setTimeout(r, 400));
    const health = c.vc.health();
    await c.stop();
    expect(health.streams[0]).toMatchObject({ dataType: 'funding_rate', source: 'rest', status: 'stale', lastSuccessAt: null, lastError: null });
  });

  it('keeps the poll error of a failing instrument while another instrument of the type polls fine', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: [] });
    venue.unknownFunding.add('BBBUSDT');
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT', 'BBBUSDT'], dataTypes: ['funding_rate'], startupGraceMs: 300 });
    // Both polled more than once: AAAUSDT's successes must not clear BBBUSDT's error.
    await waitFor(() => ['AAAUSDT', 'BBBUSDT'].every((i) => venue!.restRequests.filter((r) => r.endsWith(`symbol=${i}`)).length >= 3));
    await new Promise((r) => setTimeout(r, 300));
    const health = c.vc.health();
    await c.stop();
    expect(health.streams[0]).toMatchObject({ dataType: 'funding_rate', status: 'stale', lastError: 'http_400' });
    expect(health.streams[0]!.instruments.map((i) => [i.instrument, i.status, i.lastError])).toEqual([
      ['AAAUSDT', 'fresh', null],
      ['BBBUSDT', 'stale', 'http_400'],
    ]);
  });

  it('reports polled types fresh after a successful poll, and the error code of failing polls', async () => {
    venue = await TestVenue.start({ source: 'stream', instruments: [] });
    venue.fundingStatus = 500;
    const c = collectorFor(venue, { source: 'stream', symbols: ['AAAUSDT'], dataTypes: ['funding_rate'], startupGraceMs: 60_000 });
    await waitFor(() => c.vc.health().streams[0]?.lastError === 'http_500');
    expect(c.vc.health().streams[0]).toMatchObject({ dataType: 'funding_rate', source: 'rest', status: 'starting' });
    venue.fundingStatus = 200;
    await waitFor(() => c.published.length > 0, 15_000);
    const health = c.vc.health();
    await c.stop();
    expect(health.streams[0]).toMatchObject({ dataType: 'funding_rate', source: 'rest', status: 'fresh', lastError: null });
    expect(health.connections).toEqual([]);
    expect(c.published[0]).toMatchObject({ dataType: 'funding_rate', fundingRate: '0.0001', eventTime: 1_700_000_000_000 });
    const metrics = await c.registry.metrics();
    expect(metrics).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="funding_rate",code="http_500"\} [1-9]/);
    expect(metrics).toMatch(/mprism_collector_last_success_timestamp_seconds\{venue="binance_spot",data_type="funding_rate"\} \d+/);
  });
});

describe('splitDataTypes', () => {
  it('routes data types to WebSocket or polling and refuses ones the venue does not serve', () => {
    const adapter = testAdapter('rest');
    expect(splitDataTypes(adapter, ['trade', 'funding_rate', 'orderbook'])).toEqual({ ws: ['trade', 'orderbook'], polled: ['funding_rate'] });
    expect(() => splitDataTypes(adapter, ['liquidation' as DataType])).toThrow(/liquidation is not collected for binance_spot/);
  });
});


describe('resubscribeDelayMs', () => {
  it('resubscribes at once, then backs off from 10 s to 15 min', () => {
    expect([0, 1, 2, 3, 8, 9, 20].map(resubscribeDelayMs)).toEqual([0, 10_000, 20_000, 40_000, 900_000, 900_000, 900_000]);
  });

  it('keeps a book that never recovers within OKX subscription limits (480 per connection per hour, 20 books on one)', () => {
    let sent = 0;
    for (let at = 0; at < 3_600_000; at += resubscribeDelayMs(sent)) sent++;
    // Each resubscribe is an unsubscribe and a subscribe request.
    expect(20 * 2 * sent).toBeLessThan(480);
  });
});

describe('SnapshotQueue', () => {
  it('starts at most perSecond requests a second, one per instrument at a time, honouring notBefore', async () => {
    const started: { instrument: string; at: number }[] = [];
    const settled: string[] = [];
    const q = new SnapshotQueue<string>({
      perSecond: 20,
      fetch: async (instrument) => {
        started.push({ instrument, at: Date.now() });
        await new Promise((r) => setTimeout(r, 30));
        return instrument;
      },
      settle: (instrument, outcome) => settled.push(`${instrument}:${outcome.ok}`),
    });
    const ac = new AbortController();
    const running = q.run(ac.signal);
    const t0 = Date.now();
    q.request('late', t0 + 300);
    for (const i of ['a', 'b', 'c', 'a', 'b']) q.request(i);
    await waitFor(() => settled.length === 4);
    ac.abort();
    await running;
    expect(started.map((s) => s.instrument)).toEqual(['a', 'b', 'c', 'late']);
    expect(settled).toEqual(['a:true', 'b:true', 'c:true', 'late:true']);
    for (let i = 1; i < started.length; i++) expect(started[i]!.at - started[i - 1]!.at).toBeGreaterThanOrEqual(45);
    expect(started[3]!.at - t0).toBeGreaterThanOrEqual(295);
  });
});
