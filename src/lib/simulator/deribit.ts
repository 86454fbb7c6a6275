import type { WebSocket } from 'ws';
import { SocketHub, type SimClient } from './hub.js';
import { noise } from './market.js';
import { jsonReply, type Acceptor, type RestReply, type VenueContext, type VenueSim } from './venue.js';

/** The only DVOL indices Deribit publishes. */
const INDICES: Readonly<Record<string, number>> = { btc_usd: 55, eth_usd: 70 };
const DVOL_CHANNEL = /^deribit_volatility_index\.(btc_usd|eth_usd)$/;
const RESOLUTION_SECONDS: Readonly<Record<string, number>> = { '1': 1, '60': 60, '3600': 3600, '43200': 43_200, '1D': 86_400 };
/** Candles per answer: what users measure on Deribit (undocumented). Older ones come by `continuation`. */
const MAX_CANDLES = 1000;
/** DVOL launched in March 2021; users' first daily candle is 2021-03-24. Nothing older is served. */
export const DVOL_FIRST_CANDLE_MS = Date.UTC(2021, 2, 24);
const MIN_HEARTBEAT_SECONDS = 10;

interface DeribitClientState {
  heartbeatMs: number | null;
  nextHeartbeatAt: number;
  /** A test_request went out and the client has not answered since. */
  awaitingTest: boolean;
}

type Id = number | string | null;

/**
 * DVOL at a moment: a slow swing around the index's level plus per-second noise, a pure function of
 * time so every candle and push agree whenever they are asked for.
 */
export function dvolAt(seed: number, index: string, t: number): number {
  const base = INDICES[index] ?? 60;
  const swing = 6 * Math.sin((t / 21_600_000) * 2 * Math.PI + base);
  return Math.round((base + swing + 2 * (noise(seed, index, Math.floor(t / 1000)) - 0.5)) * 100) / 100;
}

/** `[ts, open, high, low, close]` for the bucket starting at `ts`; the newest bucket is still open at `now`. */
export function dvolCandle(seed: number, index: string, ts: number, resolutionMs: number, now: number): [number, number, number, number, number] {
  const end = Math.min(ts + resolutionMs - 1000, now);
  const open = dvolAt(seed, index, ts);
  const close = dvolAt(seed, index, Math.max(ts, end));
  const mid = dvolAt(seed, index, ts + Math.floor((end - ts) / 2));
  return [ts, open, Math.max(open, close, mid), Math.min(open, close, mid), close];
}

/** One answer of public/get_volatility_index_data: candles oldest first, and the next page's end_timestamp. */
export interface DvolPage {
  candles: [number, number, number, number, number][];
  continuation: number | null;
}

/**
 * Candles starting in [start, min(end, now)], newest `MAX_CANDLES` of them, from the same model the
 * WebSocket pushes and every earlier answer used: a finished candle reads the same whenever asked.
 * `continuation` is one ms before the oldest candle given, so the next page neither repeats nor skips one.
 */
export function dvolPage(seed: number, index: string, start: number, end: number, resolutionMs: number, now: number): DvolPage {
  const first = Math.ceil(Math.max(start, DVOL_FIRST_CANDLE_MS) / resolutionMs) * resolutionMs;
  const last = Math.floor(Math.min(end, now) / resolutionMs) * resolutionMs;
  const count = Math.max(0, Math.floor((last - first) / resolutionMs) + 1);
  const oldest = count > MAX_CANDLES ? last - (MAX_CANDLES - 1) * resolutionMs : first;
  const candles: [number, number, number, number, number][] = [];
  for (let ts = oldest; ts <= last; ts += resolutionMs) candles.push(dvolCandle(seed, index, ts, resolutionMs, now));
  return { candles, continuation: count > MAX_CANDLES ? oldest - 1 : null };
}

function envelope(now: number, body: string): string {
  const us = now * 1000;
  return `{"jsonrpc":"2.0",${body},"usIn":${us},"usOut":${us + 150},"usDiff":150,"testnet":false}`;
}

function invalidParams(now: number, param: string, reason: string, id: Id = null): string {
  return envelope(now, `"id":${JSON.stringify(id)},"error":{"message":"Invalid params","data":{"reason":${JSON.stringify(reason)},"param":"${param}"},"code":-32602}`);
}

/**
 * Deribit JSON-RPC over `/ws/api/v2` (public/subscribe to `deribit_volatility_index.*`,
 * public/set_heartbeat with test_request, public/test) and REST
 * `/api/v2/public/get_volatility_index_data` with resolution-aligned candles, paged back in time
 * by `continuation` as Deribit does.
 */
export class DeribitSim implements VenueSim {
  readonly venue = 'deribit_derivatives';
  readonly hub: SocketHub<DeribitClientState>;
  synthetic = true;
  private nextPushAt: number;
  private pushes = 0;

  constructor(private readonly ctx: VenueContext) {
    this.hub = new SocketHub(this.venue, { pingIntervalMs: null, idleCloseMs: null, slowClientBytes: ctx.slowClientBytes }, ctx.metrics, ctx.log, ctx.now);
    this.nextPushAt = ctx.now() + 1000;
  }

  preCreate(): boolean {
    return false;
  }

  wsRoute(route: string): Acceptor | null {
    if (route !== '/ws/api/v2') return null;
    return (ws: WebSocket) => {
      this.hub.accept(ws, route, { heartbeatMs: null, nextHeartbeatAt: 0, awaitingTest: false }, (client, text) => this.onText(client, text));
    };
  }

  rest(route: string, query: URLSearchParams): RestReply | null {
    if (route !== '/api/v2/public/get_volatility_index_data') return null;
    const now = this.ctx.now();
    const currency = query.get('currency');
    const index = `${(currency ?? '').toLowerCase()}_usd`;
    if (currency === null || INDICES[index] === undefined) return jsonReply(400, invalidParams(now, 'currency', 'wrong format'));
    const start = query.get('start_timestamp');
    const end = query.get('end_timestamp');
    if (start === null || !/^\d+$/.test(start)) return jsonReply(400, invalidParams(now, 'start_timestamp', 'must be an integer'));
    if (end === null || !/^\d+$/.test(end)) return jsonReply(400, invalidParams(now, 'end_timestamp', 'must be an integer'));
    const seconds = RESOLUTION_SECONDS[query.get('resolution') ?? ''];
    if (seconds === undefined) return jsonReply(400, invalidParams(now, 'resolution', 'wrong format'));
    const page = dvolPage(this.ctx.seed, index, Number(start), Number(end), seconds * 1000, now);
    return jsonReply(200, envelope(now, `"result":${JSON.stringify({ data: page.candles, continuation: page.continuation })}`));
  }

  tooManyRequests(retryAfterSeconds: number): RestReply {
    const body = envelope(this.ctx.now(), '"error":{"message":"too_many_requests","code":10028}');
    return jsonReply(429, body, { 'retry-after': String(retryAfterSeconds) });
  }

  tick(): void {
    const now = this.ctx.now();
    this.heartbeats(now);
    if (now < this.nextPushAt) return;
    this.nextPushAt = Math.max(this.nextPushAt + 1000, now);
    if (!this.synthetic) return;
    for (const index of Object.keys(INDICES)) {
      const channel = `deribit_volatility_index.${index}`;
      if (!this.hub.hasSubscribers(channel)) continue;
      const frame = `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"${channel}","data":{"volatility":${dvolAt(this.ctx.seed, index, now)},"timestamp":${now},"index_name":"${index}"}}}`;
      if (this.hub.publish(channel, () => frame) > 0) this.pushes++;
    }
  }

  gap(): string[] {
    return [];
  }

  badChecksum(): string[] {
    return [];
  }

  malformed(instrument: string | null): number {
    let n = 0;
    for (const client of this.hub.all()) {
      const channel = [...client.topics].find((c) => instrument === null || c.endsWith(`.${instrument.toLowerCase()}_usd`));
      if (channel === undefined) continue;
      this.hub.send(client, `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"${channel}","data":{"volatility":`);
      this.hub.send(client, `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"${channel}","data":{"volatility":"high","timestamp":null}}}`);
      n++;
    }
    return n;
  }

  disconnect(instrument: string | null): number {
    return this.hub.disconnect((c) => instrument === null || [...c.topics].some((t) => t.endsWith(`.${instrument.toLowerCase()}_usd`)));
  }

  stats() {
    return { connections: this.hub.size, trades: {}, bookUpdates: 0, liquidations: 0, volatilityPushes: this.pushes };
  }

  close(): void {
    this.hub.close();
  }

  /** Sends due test_requests; a client that left the previous one unanswered is closed, as Deribit does. */
  private heartbeats(now: number): void {
    for (const client of this.hub.all()) {
      const s = client.state;
      if (s.heartbeatMs === null || now < s.nextHeartbeatAt || this.hub.isStalled()) continue;
      if (s.awaitingTest) {
        this.hub.closeClient(client, 1000, 'heartbeat test_request not answered');
        continue;
      }
      s.awaitingTest = true;
      s.nextHeartbeatAt = now + s.heartbeatMs;
      this.hub.send(client, '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}');
    }
  }

  private onText(client: SimClient<DeribitClientState>, text: string): void {
    const now = this.ctx.now();
    client.state.awaitingTest = false;
    let req: { id?: unknown; method?: unknown; params?: unknown };
    try {
      req = JSON.parse(text) as typeof req;
      if (typeof req !== 'object' || req === null) throw new Error('shape');
    } catch {
      this.hub.send(client, envelope(now, '"error":{"message":"Parse error","code":-32700}'));
      return;
    }
    const id: Id = typeof req.id === 'number' || typeof req.id === 'string' ? req.id : null;
    const params = typeof req.params === 'object' && req.params !== null ? (req.params as Record<string, unknown>) : {};
    const result = (value: string) => this.hub.send(client, envelope(now, `"id":${JSON.stringify(id)},"result":${value}`));
    switch (req.method) {
      case 'public/subscribe':
      case 'public/unsubscribe': {
        const channels = Array.isArray(params.channels) ? params.channels.filter((c): c is string => typeof c === 'string') : null;
        if (channels === null) {
          this.hub.send(client, invalidParams(now, 'channels', 'must be an array', id));
          return;
        }
        // Deribit answers with the channels it accepted and leaves out the rest.
        const accepted = channels.filter((c) => DVOL_CHANNEL.test(c));
        for (const c of accepted) {
          if (req.method === 'public/subscribe') this.hub.subscribe(client, c);
          else this.hub.unsubscribe(client, c);
        }
        result(JSON.stringify(accepted));
        return;
      }
      case 'public/set_heartbeat': {
        const interval = params.interval;
        if (typeof interval !== 'number' || interval < MIN_HEARTBEAT_SECONDS) {
          this.hub.send(client, invalidParams(now, 'interval', `must be at least ${MIN_HEARTBEAT_SECONDS}`, id));
          return;
        }
        client.state.heartbeatMs = interval * 1000;
        client.state.nextHeartbeatAt = now + interval * 1000;
        result('"ok"');
        return;
      }
      case 'public/disable_heartbeat':
        client.state.heartbeatMs = null;
        result('"ok"');
        return;
      case 'public/test':
        result('{"version":"1.2.26"}');
        return;
    }
    this.hub.send(client, envelope(now, `"id":${JSON.stringify(id)},"error":{"message":"Method not found","code":-32601}`));
  }
}
