import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import { okxChecksum } from '../exchanges/okx.js';
import type { PriceLevel } from '../records.js';
import type { ModelLevel } from './book-model.js';
import { fundingRate, longShortShares, nextFundingTime, openInterestCoins, periodMs, periodStarts, FUNDING_INTERVAL_MS } from './derivatives-model.js';
import { SocketHub, type SimClient } from './hub.js';
import { PRICE_DECIMALS, QTY_DECIMALS, formatTrimmed, levelRowsJson, type SimTrade } from './market.js';
import { BOOK_INTERVAL_MS, InstrumentSet, jsonReply, type Acceptor, type InstrumentMarket, type RestReply, type VenueContext, type VenueSim } from './venue.js';

/** OKX closes a connection that sent nothing for 30 s; clients keep it open with text `ping`. */
const IDLE_CLOSE_MS = 30_000;
const SNAPSHOT_DEPTH = 400;
const CHECKSUM_DEPTH = 25;
const RUBIK_PERIODS = ['5m', '15m', '30m', '1H', '2H', '4H', '6H', '12H', '1D'];
/** Rubik endpoints keep the latest 1,440 bars of each period. */
const RUBIK_HORIZON_BARS = 1440;
const RUBIK_LIMIT = 100;
const TRADES_LIMIT = 100;
const FUNDING_HISTORY_LIMIT = 400;
/** OKX keeps three months of funding history. */
const FUNDING_HISTORY_MS = 90 * 86_400_000;
/** Coins per contract of the simulated swaps (OKX ctVal), by base asset. */
const CONTRACT_VALUE: Readonly<Record<string, number>> = { BTC: 0.01, ETH: 0.1 };

type OkxVenue = 'okx_spot' | 'okx_derivatives';
type Arg = { channel: string; instId?: string; instType?: string };

interface OkxClientState {
  connId: string;
}

const SPOT_ID = /^[A-Z0-9]{2,15}-[A-Z0-9]{2,10}$/;
const SWAP_ID = /^[A-Z0-9]{2,15}-[A-Z0-9]{2,10}-SWAP$/;
const SPOT_CHANNELS = ['books', 'trades'];
const SWAP_CHANNELS = ['books', 'trades', 'funding-rate', 'open-interest'];

const px = (ticks: number) => formatTrimmed(ticks, PRICE_DECIMALS);

const contractValues = new Map<string, number>();

/** Memoized: a swap trade's size needs it for every trade. */
function contractValue(instId: string): number {
  let v = contractValues.get(instId);
  if (v === undefined) {
    v = CONTRACT_VALUE[instId.split('-')[0] ?? ''] ?? 1;
    contractValues.set(instId, v);
  }
  return v;
}

/** OKX book levels: [price, size, "0" (deprecated liquidated orders), order count]. */
export function okxLevels(levels: readonly ModelLevel[], sizeDecimals: number): string {
  return levelRowsJson(levels, (p, q) => `"${px(p)}","${formatTrimmed(q, sizeDecimals)}","0","${1 + (q % 5)}"`);
}

function topic(arg: Arg): string {
  return `${arg.channel}:${arg.instId ?? arg.instType ?? ''}`;
}

function argJson(arg: Arg): string {
  return JSON.stringify(arg.instId !== undefined ? { channel: arg.channel, instId: arg.instId } : { channel: arg.channel, instType: arg.instType });
}

/** OKX's REST envelope. */
function okxReply(status: number, code: string, msg: string, data: string): RestReply {
  return jsonReply(status, `{"code":"${code}","msg":"${msg}","data":${data}}`);
}

/** OKX's answer to a parameter it cannot use. */
function badParameter(name: string): RestReply {
  return okxReply(400, '51000', `Parameter ${name} error`, '[]');
}

/**
 * Integer query parameters (ids and epoch ms): a value each, undefined where absent, or OKX's
 * error reply for the first one that is not a non-negative integer.
 */
function integerParams<K extends string>(query: URLSearchParams, names: readonly K[]): Record<K, number | undefined> | RestReply {
  const out = {} as Record<K, number | undefined>;
  for (const name of names) {
    const v = query.get(name);
    if (v === null || v === '') continue;
    if (!/^\d{1,16}$/.test(v)) return badParameter(name);
    out[name] = Number(v);
  }
  return out;
}

function isReply(v: object): v is RestReply {
  return 'status' in v && 'body' in v;
}

/** A page size: the venue's default when absent, at least 1, at most its maximum. */
function pageSize(limit: number | undefined, max: number): number {
  return Math.min(Math.max(1, limit ?? max), max);
}

/**
 * Rubik bars: period starts, newest first, strictly between `begin` and `end` (OKX: newer than /
 * older than), within the latest 1,440 bars. The newest is the bar in progress.
 */
function rubikTimes(now: number, period: number, limit: number, begin: number | undefined, end: number | undefined): number[] {
  const horizon = (Math.floor(now / period) - (RUBIK_HORIZON_BARS - 1)) * period;
  return periodStarts(now, period, limit, Math.max(horizon, begin === undefined ? 0 : begin + 1), end === undefined ? null : end - 1);
}

/**
 * OKX v5 public WebSocket (`/ws/v5/public`: op subscribe/unsubscribe, `event` acks and errors, text
 * ping/pong, idle close) and REST, for spot (`BTC-USDT`) or perpetual swaps (`BTC-USDT-SWAP`).
 * `books` sends a 400-level snapshot on subscribe, then updates every 100 ms with seqId/prevSeqId
 * and the CRC32 checksum of the top 25 levels after applying them.
 */
export class OkxSim implements VenueSim {
  readonly hub: SocketHub<OkxClientState>;
  synthetic = true;
  private readonly instruments: InstrumentSet;
  private readonly badChecksums = new Set<string>();
  private readonly swaps: boolean;
  private readonly sizeDecimals: number;
  private bookUpdates = 0;
  private liquidations = 0;
  private nextFundingPushAt: number;
  private nextOpenInterestPushAt: number;

  constructor(
    readonly venue: OkxVenue,
    private readonly ctx: VenueContext,
  ) {
    this.swaps = venue === 'okx_derivatives';
    // Spot sizes are coins with the tape's decimals; swap sizes are whole contracts.
    this.sizeDecimals = this.swaps ? 0 : QTY_DECIMALS;
    this.hub = new SocketHub(venue, { pingIntervalMs: null, idleCloseMs: IDLE_CLOSE_MS, slowClientBytes: ctx.slowClientBytes }, ctx.metrics, ctx.log, ctx.now);
    this.instruments = new InstrumentSet(venue, ctx, this.swaps ? 500 : 5 * 10 ** QTY_DECIMALS);
    this.nextFundingPushAt = ctx.now() + 30_000;
    this.nextOpenInterestPushAt = ctx.now() + 3000;
  }

  /** BTCUSDT from the config -> BTC-USDT or BTC-USDT-SWAP. */
  preCreate(symbol: string): boolean {
    const m = /^([A-Z0-9]+?)(USDT|USDC|USD)$/.exec(symbol.toUpperCase());
    if (m === null) return false;
    this.instruments.get(`${m[1]}-${m[2]}${this.swaps ? '-SWAP' : ''}`);
    return true;
  }

  wsRoute(route: string): Acceptor | null {
    if (route !== '/ws/v5/public') return null;
    return (ws: WebSocket) => {
      this.hub.accept(ws, route, { connId: randomUUID().slice(0, 8) }, (client, text) => this.onText(client, text));
    };
  }

  rest(route: string, query: URLSearchParams): RestReply | null {
    const now = this.ctx.now();
    switch (route) {
      case '/api/v5/market/books': {
        const m = this.instrument(query.get('instId'));
        if ('status' in m) return m;
        const sz = Math.min(Math.max(1, Number(query.get('sz') ?? '1') || 1), SNAPSHOT_DEPTH);
        const { bids, asks } = m.book.levels(sz);
        return okxReply(200, '0', '', `[{"asks":${this.levelsJson(asks)},"bids":${this.levelsJson(bids)},"ts":"${now}"}]`);
      }
      case '/api/v5/public/funding-rate':
      case '/api/v5/public/open-interest': {
        if (!this.swaps) return okxReply(400, '51001', 'Instrument ID does not exist', '[]');
        if (route === '/api/v5/public/open-interest' && query.get('instType') === null) return okxReply(400, '50014', 'Parameter instType can not be empty', '[]');
        const m = this.instrument(query.get('instId'));
        if ('status' in m) return m;
        return okxReply(200, '0', '', `[${route.endsWith('funding-rate') ? this.fundingJson(m, now) : this.openInterestJson(m, now)}]`);
      }
      case '/api/v5/public/instruments':
        return this.instrumentsReply(query);
      case '/api/v5/rubik/stat/contracts/long-short-account-ratio-contract':
      case '/api/v5/rubik/stat/contracts/long-short-position-ratio-contract-top-trader':
        return this.longShortRatio(route, query, now);
      case '/api/v5/market/history-trades':
        return this.historyTrades(query);
      case '/api/v5/public/funding-rate-history':
        return this.fundingHistory(query, now);
      case '/api/v5/rubik/stat/contracts/open-interest-history':
        return this.openInterestHistory(query, now);
      default:
        return null;
    }
  }

  tooManyRequests(retryAfterSeconds: number): RestReply {
    return { ...okxReply(429, '50011', 'Too Many Requests', '[]'), headers: { 'retry-after': String(retryAfterSeconds) } };
  }

  tick(tradesDue: number): void {
    const now = this.ctx.now();
    const fundingDue = now >= this.nextFundingPushAt;
    if (fundingDue) this.nextFundingPushAt = now + 30_000;
    const oiDue = now >= this.nextOpenInterestPushAt;
    if (oiDue) this.nextOpenInterestPushAt = now + 3000;
    for (const m of this.instruments.all()) {
      for (let i = 0; i < tradesDue; i++) this.publishTrade(m, m.nextTrade(now));
      m.reportSent(this.ctx.metrics);
      if (now >= m.nextBookAt) this.stepBook(m, now);
      if (!this.swaps) continue;
      if (now >= m.nextLiquidationAt) this.liquidate(m, now);
      if (fundingDue) this.push({ channel: 'funding-rate', instId: m.id }, this.fundingJson(m, now));
      if (oiDue) this.push({ channel: 'open-interest', instId: m.id }, this.openInterestJson(m, now));
    }
  }

  gap(instrument: string | null): string[] {
    return this.instruments.select(instrument).map((m) => {
      m.dropNextBookUpdate = true;
      return m.id;
    });
  }

  badChecksum(instrument: string | null): string[] {
    return this.instruments.select(instrument).map((m) => {
      this.badChecksums.add(m.id);
      return m.id;
    });
  }

  malformed(instrument: string | null): number {
    let n = 0;
    for (const client of this.hub.all()) {
      const t = [...client.topics].find((s) => instrument === null || s.endsWith(`:${instrument}`));
      if (t === undefined) continue;
      const [channel = 'trades', instId = 'BTC-USDT'] = t.split(':');
      this.hub.send(client, `{"arg":{"channel":"${channel}","instId":"${instId}"},"data":[{"instId":`);
      this.hub.send(client, `{"arg":{"channel":"${channel}","instId":"${instId}"},"data":"not-an-array"}`);
      n++;
    }
    return n;
  }

  disconnect(instrument: string | null): number {
    return this.hub.disconnect((c) => instrument === null || [...c.topics].some((t) => t.endsWith(`:${instrument}`)));
  }

  stats() {
    return { connections: this.hub.size, trades: this.instruments.tradeStats(), bookUpdates: this.bookUpdates, liquidations: this.liquidations };
  }

  close(): void {
    this.hub.close();
  }

  private validInstId(instId: string): boolean {
    return (this.swaps ? SWAP_ID : SPOT_ID).test(instId);
  }

  /** `GET /api/v5/public/instruments`: instType required; one instrument or every one created so far. */
  private instrumentsReply(query: URLSearchParams): RestReply {
    const instType = query.get('instType');
    if (instType === null || instType === '') return okxReply(400, '50014', 'Parameter instType can not be empty', '[]');
    if (instType !== (this.swaps ? 'SWAP' : 'SPOT')) return okxReply(200, '0', '', '[]');
    const instId = query.get('instId');
    let markets: InstrumentMarket[];
    if (instId === null) {
      markets = [...this.instruments.all()];
    } else {
      const m = this.instrument(instId);
      if ('status' in m) return m;
      markets = [m];
    }
    return okxReply(200, '0', '', `[${markets.map((m) => this.instrumentJson(m.id)).join(',')}]`);
  }

  /** An instruments item with the fields OKX sends (a subset); ct* only on swaps, linear like the configured ones. */
  private instrumentJson(instId: string): string {
    const [base, quote] = instId.split('-');
    const ct = this.swaps ? { ctVal: String(contractValue(instId)), ctMult: '1', ctValCcy: base, ctType: 'linear' } : { ctVal: '', ctMult: '', ctValCcy: '', ctType: '' };
    const family = this.swaps ? `${base}-${quote}` : '';
    return JSON.stringify({
      alias: '',
      baseCcy: this.swaps ? '' : base,
      category: '1',
      ctMult: ct.ctMult,
      ctType: ct.ctType,
      ctVal: ct.ctVal,
      ctValCcy: ct.ctValCcy,
      expTime: '',
      instFamily: family,
      instId,
      instType: this.swaps ? 'SWAP' : 'SPOT',
      lever: this.swaps ? '100' : '10',
      listTime: '1611916828000',
      lotSz: this.swaps ? '1' : formatTrimmed(1, QTY_DECIMALS),
      maxMktSz: this.swaps ? '5000' : '1000000',
      minSz: this.swaps ? '1' : formatTrimmed(1, QTY_DECIMALS),
      quoteCcy: this.swaps ? '' : quote,
      settleCcy: this.swaps ? quote : '',
      state: 'live',
      tickSz: formatTrimmed(1, PRICE_DECIMALS),
      uly: family,
    });
  }

  private instrument(instId: string | null): InstrumentMarket | RestReply {
    if (instId === null || instId === '') return okxReply(400, '50014', 'Parameter instId can not be empty', '[]');
    if (!this.validInstId(instId)) return okxReply(400, '51001', 'Instrument ID does not exist', '[]');
    return this.instruments.get(instId);
  }

  private onText(client: SimClient<OkxClientState>, text: string): void {
    if (text === 'ping') {
      this.hub.send(client, 'pong');
      return;
    }
    const connId = client.state.connId;
    let req: { op?: unknown; args?: unknown; id?: unknown };
    try {
      req = JSON.parse(text) as typeof req;
      if (typeof req !== 'object' || req === null || !Array.isArray(req.args)) throw new Error('shape');
    } catch {
      this.hub.send(client, JSON.stringify({ event: 'error', code: '60012', msg: `Invalid request: ${text.slice(0, 100)}`, connId }));
      return;
    }
    if (req.op !== 'subscribe' && req.op !== 'unsubscribe') {
      this.hub.send(client, JSON.stringify({ event: 'error', code: '60012', msg: `Invalid request: ${text.slice(0, 100)}`, connId }));
      return;
    }
    const id = typeof req.id === 'string' ? `"id":"${req.id}",` : '';
    for (const raw of req.args as unknown[]) {
      const arg = this.parseArg(raw);
      if (arg === null) {
        const a = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
        const msg = `Wrong URL or channel:${String(a.channel)},instId:${String(a.instId ?? a.instType)} doesn't exist. Please use the correct URL, channel and parameters referring to API document.`;
        this.hub.send(client, `{${id}"event":"error","code":"60018","msg":${JSON.stringify(msg)},"connId":"${connId}"}`);
        continue;
      }
      if (req.op === 'unsubscribe') {
        this.hub.unsubscribe(client, topic(arg));
        this.hub.send(client, `{${id}"event":"unsubscribe","arg":${argJson(arg)},"connId":"${connId}"}`);
        continue;
      }
      this.hub.subscribe(client, topic(arg));
      this.hub.send(client, `{${id}"event":"subscribe","arg":${argJson(arg)},"connId":"${connId}"}`);
      this.afterSubscribe(client, arg);
    }
  }

  private parseArg(raw: unknown): Arg | null {
    if (typeof raw !== 'object' || raw === null) return null;
    const { channel, instId, instType } = raw as Record<string, unknown>;
    if (channel === 'liquidation-orders') return this.swaps && instType === 'SWAP' ? { channel, instType } : null;
    if (typeof channel !== 'string' || typeof instId !== 'string') return null;
    if (!(this.swaps ? SWAP_CHANNELS : SPOT_CHANNELS).includes(channel) || !this.validInstId(instId)) return null;
    this.instruments.get(instId);
    return { channel, instId };
  }

  /** `books` starts with a snapshot; funding and open interest push their current value at once. */
  private afterSubscribe(client: SimClient<OkxClientState>, arg: Arg): void {
    if (arg.instId === undefined || !this.synthetic) return;
    const m = this.instruments.get(arg.instId);
    const now = this.ctx.now();
    if (arg.channel === 'books') {
      const { bids, asks } = m.book.levels(SNAPSHOT_DEPTH);
      const checksum = this.checksum(m, bids, asks);
      this.hub.send(client, `{"arg":${argJson(arg)},"action":"snapshot","data":[{"asks":${this.levelsJson(asks)},"bids":${this.levelsJson(bids)},"ts":"${now}","checksum":${checksum},"prevSeqId":-1,"seqId":${m.seq}}]}`);
    } else if (arg.channel === 'funding-rate') {
      this.hub.send(client, `{"arg":${argJson(arg)},"data":[${this.fundingJson(m, now)}]}`);
    } else if (arg.channel === 'open-interest') {
      this.hub.send(client, `{"arg":${argJson(arg)},"data":[${this.openInterestJson(m, now)}]}`);
    }
  }

  private push(arg: Arg, item: string, t = topic(arg)): number {
    if (!this.synthetic || !this.hub.hasSubscribers(t)) return 0;
    const frame = `${this.argHead(t, arg)}"data":[${item}]}`;
    return this.hub.publish(t, () => frame);
  }

  /** `{"arg":{...},` of a topic's pushes, made once per topic: the trades channel needs it for every trade. */
  private readonly argHeads = new Map<string, string>();

  private argHead(t: string, arg: Arg): string {
    let head = this.argHeads.get(t);
    if (head === undefined) {
      head = `{"arg":${argJson(arg)},`;
      this.argHeads.set(t, head);
    }
    return head;
  }

  /** The `trades` arg and topic of an instrument, made once. */
  private readonly tradeArgs = new Map<string, { arg: Arg; topic: string }>();

  private tradeArg(instId: string): { arg: Arg; topic: string } {
    let a = this.tradeArgs.get(instId);
    if (a === undefined) {
      const arg = { channel: 'trades', instId };
      a = { arg, topic: topic(arg) };
      this.tradeArgs.set(instId, a);
    }
    return a;
  }

  private levelsJson(levels: readonly ModelLevel[]): string {
    return okxLevels(levels, this.sizeDecimals);
  }

  /** The checksum over the top 25 of the model, with the strings exactly as sent; the bad_checksum fault spoils one. */
  private checksum(m: InstrumentMarket, bids: readonly ModelLevel[], asks: readonly ModelLevel[]): number {
    const fmt = (levels: readonly ModelLevel[]): PriceLevel[] => levels.slice(0, CHECKSUM_DEPTH).map(([p, q]) => [px(p), formatTrimmed(q, this.sizeDecimals)]);
    const good = okxChecksum(fmt(bids), fmt(asks));
    if (!this.badChecksums.delete(m.id)) return good;
    const bad = (good + 1) | 0;
    return bad === 0 ? 1 : bad;
  }

  private tradeSize(t: SimTrade, instId: string): string {
    if (!this.swaps) return formatTrimmed(t.qtyLots, QTY_DECIMALS);
    return String(Math.max(1, Math.round((t.qtyLots / 10 ** QTY_DECIMALS) / contractValue(instId))));
  }

  /**
   * One trade as OKX prints it: the `trades` push (one fill each here, so count 1) or a
   * `history-trades` item (no count or seqId, its own field order); the values are the same.
   */
  private tradeJson(m: InstrumentMarket, t: SimTrade, form: 'push' | 'history'): string {
    const side = t.buyerIsMaker ? 'sell' : 'buy';
    const sz = this.tradeSize(t, m.id);
    return form === 'push'
      ? `{"instId":"${m.id}","tradeId":"${t.id}","px":"${px(t.priceTicks)}","sz":"${sz}","side":"${side}","ts":"${t.time}","count":"1","seqId":${t.id}}`
      : `{"instId":"${m.id}","side":"${side}","sz":"${sz}","px":"${px(t.priceTicks)}","tradeId":"${t.id}","ts":"${t.time}"}`;
  }

  private publishTrade(m: InstrumentMarket, t: SimTrade): void {
    const { arg, topic: t2 } = this.tradeArg(m.id);
    if (!this.hub.hasSubscribers(t2)) return;
    if (this.push(arg, this.tradeJson(m, t, 'push'), t2) === 0) return;
    m.countSent(t);
  }

  private stepBook(m: InstrumentMarket, now: number): void {
    m.nextBookAt = Math.max(m.nextBookAt + BOOK_INTERVAL_MS, now);
    const diff = m.book.step(m.tape.priceTicks);
    const prev = m.seq;
    m.seq = prev + 1 + Math.floor(m.random() * (diff.bids.length + diff.asks.length));
    if (m.dropNextBookUpdate) {
      m.dropNextBookUpdate = false;
      return;
    }
    const arg = { channel: 'books', instId: m.id };
    if (!this.synthetic || !this.hub.hasSubscribers(topic(arg))) return;
    const top = m.book.levels(CHECKSUM_DEPTH);
    const checksum = this.checksum(m, top.bids, top.asks);
    const item = `{"asks":${this.levelsJson(diff.asks)},"bids":${this.levelsJson(diff.bids)},"ts":"${now}","checksum":${checksum},"prevSeqId":${prev},"seqId":${m.seq}}`;
    if (this.hub.publish(topic(arg), () => `{"arg":${argJson(arg)},"action":"update","data":[${item}]}`) === 0) return;
    this.bookUpdates++;
    this.ctx.metrics.bookUpdates.inc({ venue: this.venue });
  }

  private liquidate(m: InstrumentMarket, now: number): void {
    m.nextLiquidationAt = now + m.liquidationPause();
    const long = m.random() < 0.5;
    const bkPx = px(m.tape.priceTicks + (long ? -1 : 1) * Math.round(m.tape.priceTicks * 0.001));
    const sz = String(1 + Math.floor(m.random() ** 2 * 200));
    const family = m.id.replace(/-SWAP$/, '');
    const item = `{"details":[{"bkLoss":"0","bkPx":"${bkPx}","ccy":"","posSide":"${long ? 'long' : 'short'}","side":"${long ? 'sell' : 'buy'}","sz":"${sz}","ts":"${now}"}],"instFamily":"${family}","instId":"${m.id}","instType":"SWAP","uly":"${family}"}`;
    if (this.push({ channel: 'liquidation-orders', instType: 'SWAP' }, item) > 0) this.liquidations++;
  }

  private fundingJson(m: InstrumentMarket, now: number): string {
    const key = `${this.venue}/${m.id}`;
    const rate = fundingRate(this.ctx.seed, key, now).toFixed(16);
    const settled = fundingRate(this.ctx.seed, key, nextFundingTime(now) - FUNDING_INTERVAL_MS).toFixed(16);
    const next = nextFundingTime(now);
    return `{"formulaType":"noRate","fundingRate":"${rate}","fundingTime":"${next}","impactValue":"","instId":"${m.id}","instType":"SWAP","interestRate":"","maxFundingRate":"0.00375","method":"current_period","minFundingRate":"-0.00375","nextFundingRate":"","nextFundingTime":"${next + FUNDING_INTERVAL_MS}","premium":"${(Number(rate) * 0.5).toFixed(16)}","settFundingRate":"${settled}","settState":"settled","ts":"${now}"}`;
  }

  /**
   * Open interest at `ts`, valued at the last trade price then: what the live endpoint said, or
   * would have said, at that moment. Before the oldest kept trade the current price stands in.
   */
  private openInterestAt(m: InstrumentMarket, ts: number): { oi: string; oiCcy: string; oiUsd: string } {
    const coins = openInterestCoins(this.ctx.seed, `${this.venue}/${m.id}`, ts);
    const contracts = Math.round(coins / contractValue(m.id));
    const priceTicks = m.trades.inTimeNewestFirst(0, ts, 1)[0]?.priceTicks ?? m.tape.priceTicks;
    return {
      oi: String(contracts),
      oiCcy: (contracts * contractValue(m.id)).toFixed(2),
      oiUsd: ((contracts * contractValue(m.id) * priceTicks) / 10 ** PRICE_DECIMALS).toFixed(2),
    };
  }

  private openInterestJson(m: InstrumentMarket, now: number): string {
    const { oi, oiCcy, oiUsd } = this.openInterestAt(m, now);
    return `{"instId":"${m.id}","instType":"SWAP","oi":"${oi}","oiCcy":"${oiCcy}","oiUsd":"${oiUsd}","ts":"${now}"}`;
  }

  /** The rate settled at `fundingTime`: the live answers' settFundingRate for that settlement. */
  private fundingHistoryJson(m: InstrumentMarket, fundingTime: number): string {
    const rate = fundingRate(this.ctx.seed, `${this.venue}/${m.id}`, fundingTime).toFixed(16);
    return `{"formulaType":"noRate","fundingRate":"${rate}","fundingTime":"${fundingTime}","instId":"${m.id}","instType":"SWAP","method":"current_period","realizedRate":"${rate}"}`;
  }

  /**
   * `GET /api/v5/market/history-trades`: every trade the tape produced (sent or not), newest
   * first. type 1 pages by trade id (`after` older, `before` newer than an id; `before` alone gives
   * the newest), type 2 by time (`after` only: OKX does not page timestamps with `before`).
   */
  private historyTrades(query: URLSearchParams): RestReply {
    const m = this.instrument(query.get('instId'));
    if (isReply(m)) return m;
    const type = query.get('type') ?? '1';
    if (type !== '1' && type !== '2') return badParameter('type');
    const p = integerParams(query, ['after', 'before', 'limit']);
    if (isReply(p)) return p;
    const limit = pageSize(p.limit, TRADES_LIMIT);
    let trades: SimTrade[];
    if (type === '2') {
      trades = p.after === undefined ? m.trades.newest(limit).reverse() : m.trades.inTimeNewestFirst(0, p.after - 1, limit);
    } else {
      const newer = (t: SimTrade) => p.before === undefined || t.id > p.before;
      trades = (p.after === undefined ? m.trades.newest(limit) : m.trades.beforeId(p.after, limit)).reverse().filter(newer);
    }
    return okxReply(200, '0', '', `[${trades.map((t) => this.tradeJson(m, t, 'history')).join(',')}]`);
  }

  /**
   * `GET /api/v5/public/funding-rate-history`: settled intervals of the last three months, newest
   * first; `after`/`before` are exclusive bounds on fundingTime.
   */
  private fundingHistory(query: URLSearchParams, now: number): RestReply {
    if (!this.swaps) return okxReply(400, '51001', 'Instrument ID does not exist', '[]');
    const m = this.instrument(query.get('instId'));
    if (isReply(m)) return m;
    const p = integerParams(query, ['after', 'before', 'limit']);
    if (isReply(p)) return p;
    const limit = pageSize(p.limit, FUNDING_HISTORY_LIMIT);
    const lastSettled = nextFundingTime(now) - FUNDING_INTERVAL_MS;
    const start = p.after === undefined ? lastSettled : Math.min(lastSettled, Math.floor((p.after - 1) / FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS);
    const oldest = Math.max(now - FUNDING_HISTORY_MS, p.before === undefined ? 0 : p.before + 1);
    const rows: string[] = [];
    for (let t = start; t >= oldest && rows.length < limit; t -= FUNDING_INTERVAL_MS) rows.push(this.fundingHistoryJson(m, t));
    return okxReply(200, '0', '', `[${rows.join(',')}]`);
  }

  /** `GET /api/v5/rubik/stat/contracts/open-interest-history`: [ts, oi, oiCcy, oiUsd] per bar, newest first. */
  private openInterestHistory(query: URLSearchParams, now: number): RestReply {
    const bars = this.rubikBars(query, now);
    if (isReply(bars)) return bars;
    const rows = bars.times.map((ts) => {
      const { oi, oiCcy, oiUsd } = this.openInterestAt(bars.m, ts);
      return `["${ts}","${oi}","${oiCcy}","${oiUsd}"]`;
    });
    return okxReply(200, '0', '', `[${rows.join(',')}]`);
  }

  /** The instrument, period and bar times a rubik request asks for, or OKX's error reply. */
  private rubikBars(query: URLSearchParams, now: number): { m: InstrumentMarket; period: number; times: number[] } | RestReply {
    if (!this.swaps) return okxReply(400, '51001', 'Instrument ID does not exist', '[]');
    const m = this.instrument(query.get('instId'));
    if (isReply(m)) return m;
    const period = periodMs(query.get('period') ?? '5m', RUBIK_PERIODS);
    if (period === null) return badParameter('period');
    const p = integerParams(query, ['begin', 'end', 'limit']);
    if (isReply(p)) return p;
    return { m, period, times: rubikTimes(now, period, pageSize(p.limit, RUBIK_LIMIT), p.begin, p.end) };
  }

  /** The rubik long/short ratios: live polls (latest bars) and history (begin/end) read the same bars. */
  private longShortRatio(route: string, query: URLSearchParams, now: number): RestReply {
    const bars = this.rubikBars(query, now);
    if (isReply(bars)) return bars;
    const key = `${this.venue}/${bars.m.id}${route}/${bars.period}`;
    const rows = bars.times.map((ts) => `["${ts}","${longShortShares(this.ctx.seed, key, ts).ratio}"]`);
    return okxReply(200, '0', '', `[${rows.join(',')}]`);
  }
}
