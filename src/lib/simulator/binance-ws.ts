import type { WebSocket } from 'ws';
import type { SimClient, SocketHub } from './hub.js';
import type { Acceptor } from './venue.js';

export interface BinanceClientState {
  /** `stream` routes wrap frames as {"stream","data"}; `ws` routes send bare events. */
  combined: boolean;
  /** Every stream the client subscribed to and got an ack for, delivered or not. */
  acked: Set<string>;
}

export type BinanceHub = SocketHub<BinanceClientState>;

type Request = { method?: unknown; params?: unknown; id?: unknown };

/** `/stream?streams=a/b`, `/ws/a/b` and `/ws` under a route prefix such as `/public`. */
export function parseStreamRoute(route: string, query: URLSearchParams, prefix: string): { combined: boolean; streams: string[] } | null {
  if (!route.startsWith(`${prefix}/`)) return null;
  const rest = route.slice(prefix.length);
  if (rest === '/stream') {
    const list = query.get('streams');
    return { combined: true, streams: list === null || list === '' ? [] : list.split('/') };
  }
  if (rest === '/ws') return { combined: false, streams: [] };
  const raw = /^\/ws\/(.+)$/.exec(rest);
  return raw === null ? null : { combined: false, streams: (raw[1] ?? '').split('/') };
}

export function combinedJson(stream: string, event: string): string {
  return `{"stream":"${stream}","data":${event}}`;
}

/** The frame for one client: wrapped on combined routes, bare on raw ones. */
export function framer(stream: string, event: string): (client: SimClient<BinanceClientState>) => string {
  let combined: string | null = null;
  return (client) => (client.state.combined ? (combined ??= combinedJson(stream, event)) : event);
}

/** Stream names by instrument and kind, made once: they are needed for every trade. */
export class StreamNames {
  private readonly names = new Map<(id: string) => string, Map<string, string>>();

  get(id: string, name: (id: string) => string): string {
    let byId = this.names.get(name);
    if (byId === undefined) {
      byId = new Map();
      this.names.set(name, byId);
    }
    let s = byId.get(id);
    if (s === undefined) {
      s = name(id);
      byId.set(id, s);
    }
    return s;
  }
}

/** `btcusdt@depth@100ms` -> BTCUSDT; null for all-market streams such as `!forceOrder@arr`. */
export function streamInstrument(stream: string): string | null {
  const sym = stream.split('@')[0] ?? '';
  return /^[a-z0-9]{2,30}$/.test(sym) ? sym.toUpperCase() : null;
}

/**
 * Binance's stream protocol on one route: SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS with acks. A
 * stream the route does not carry is acked and then silent, as on the real exchange: `delivers`
 * says which streams reach the socket.
 */
export function binanceAcceptor(
  hub: BinanceHub,
  route: string,
  combined: boolean,
  streams: readonly string[],
  delivers: (stream: string) => boolean,
  onSubscribe: (stream: string) => void,
): Acceptor {
  const subscribe = (client: SimClient<BinanceClientState>, list: readonly string[]) => {
    for (const s of list) {
      client.state.acked.add(s);
      if (!delivers(s)) continue;
      onSubscribe(s);
      hub.subscribe(client, s);
    }
  };
  const onText = (client: SimClient<BinanceClientState>, text: string) => {
    let req: Request;
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      req = parsed as Request;
    } catch {
      hub.send(client, JSON.stringify({ error: { code: 3, msg: 'Invalid JSON: expected value at line 1 column 1' }, id: null }));
      return;
    }
    const id = typeof req.id === 'number' || typeof req.id === 'string' ? req.id : null;
    const params = Array.isArray(req.params) && req.params.every((p) => typeof p === 'string') ? (req.params as string[]) : null;
    switch (req.method) {
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE':
        if (params === null) break;
        if (req.method === 'SUBSCRIBE') subscribe(client, params);
        else
          for (const s of params) {
            client.state.acked.delete(s);
            hub.unsubscribe(client, s);
          }
        hub.send(client, JSON.stringify({ result: null, id }));
        return;
      case 'LIST_SUBSCRIPTIONS':
        hub.send(client, JSON.stringify({ result: [...client.state.acked], id }));
        return;
    }
    hub.send(client, JSON.stringify({ error: { code: 2, msg: 'Invalid request: unknown method or params' }, id }));
  };
  return (ws: WebSocket) => {
    const client = hub.accept(ws, route, { combined, acked: new Set() }, onText);
    subscribe(client, streams);
  };
}

/** Malformed frames for every connection subscribed to a stream of `instrument` (any, when null). */
export function sendBinanceMalformed(hub: BinanceHub, instrument: string | null, now: number): number {
  let n = 0;
  for (const client of hub.all()) {
    const stream = [...client.topics].find((s) => instrument === null || streamInstrument(s) === instrument);
    if (stream === undefined) continue;
    const symbol = streamInstrument(stream) ?? 'BTCUSDT';
    // One frame that is not JSON, one that is JSON of the wrong shape.
    const cut = `{"e":"trade","E":${now}`;
    const wrongShape = `{"e":"trade","E":${now},"s":"${symbol}","t":"not-a-number","p":42}`;
    hub.send(client, client.state.combined ? `{"stream":"${stream}","data":${cut}` : cut);
    hub.send(client, client.state.combined ? combinedJson(stream, wrongShape) : wrongShape);
    n++;
  }
  return n;
}

/** The binance weight counter behind `x-mbx-used-weight-1m`: weight used in the current clock minute. */
export class UsedWeight {
  private minute = -1;
  private used = 0;

  add(weight: number, now: number): number {
    const minute = Math.floor(now / 60_000);
    if (minute !== this.minute) {
      this.minute = minute;
      this.used = 0;
    }
    this.used += weight;
    return this.used;
  }
}
