import type { DataType, PolledDataType } from '../config/schema.js';
import type { BookMessage, SequenceRules, SequenceVerdict } from '../orderbook/types.js';
import {
  binanceControl,
  binanceInstrumentOf,
  binanceRestBook,
  binanceEvent,
  binanceTradeHistory,
  isDepthEvent,
  isTradeEvent,
  requireSupported,
  streamConnections,
  toBookUpdate,
  toTrade,
} from './binance.js';
import { fastBinanceTrade } from './fast-frames.js';
import { MalformedFrameError, joinUrl, type FrameSink, type RestPoll, type VenueAdapter, type WsConnectionSpec } from './types.js';

const WS_DATA_TYPES = ['orderbook', 'trade'] as const satisfies readonly DataType[];
const POLLED_DATA_TYPES: readonly PolledDataType[] = [];

const STREAM_SUFFIX: Readonly<Record<(typeof WS_DATA_TYPES)[number], string>> = {
  orderbook: 'depth@100ms',
  trade: 'trade',
};

/**
 * Events this adapter does not turn into records. aggTrade in particular is not mapped to trades:
 * its id `a` is a different sequence from the trade id `t`, and one aggTrade merges several fills,
 * so storing both would collide ids and double count volume. serverShutdown is for control().
 */
const IGNORED_EVENTS: ReadonlySet<string> = new Set(['aggTrade', 'serverShutdown']);

/** The server pings every 20 s, so a minute without a frame or ping means the socket is dead. */
const STALE_AFTER_MS = 60_000;

/** Snapshot depth and its request weight (limit 1000 costs 50). */
const SNAPSHOT_LIMIT = 1000;
const SNAPSHOT_WEIGHT = 50;

/**
 * Spot diff-depth chaining ("How to manage a local order book correctly"): every event after the
 * snapshot starts exactly one past the previous one, because U..u covers every update in between.
 */
export const binanceSpotSequence: SequenceRules = {
  firstAfterSnapshot(snapshotId: number, m: BookMessage): SequenceVerdict {
    const last = m.lastUpdateId ?? 0;
    if (last <= snapshotId) return { kind: 'skip' };
    // u > snapshotId here, so U <= snapshotId + 1 means the event straddles the snapshot.
    if (m.firstUpdateId !== null && m.firstUpdateId <= snapshotId + 1) return { kind: 'apply' };
    return { kind: 'gap', detail: `snapshot ${snapshotId} older than first buffered event U ${String(m.firstUpdateId)}` };
  },
  next(lastAppliedId: number, m: BookMessage): SequenceVerdict {
    const last = m.lastUpdateId ?? 0;
    // A repeat (resent after a hiccup) holds nothing the book lacks.
    if (last <= lastAppliedId) return { kind: 'skip' };
    if (m.firstUpdateId === lastAppliedId + 1) return { kind: 'apply' };
    return { kind: 'gap', detail: `expected U ${lastAppliedId + 1} got ${String(m.firstUpdateId)}` };
  },
};

/**
 * `GET /api/v3/historicalTrades`: weight 25 (since 2024-04-04), limit max 1000, security NONE since
 * 2023-07-11 (the X-MBX-APIKEY header is ignored), no documented horizon.
 */
const TRADE_HISTORY = binanceTradeHistory({
  venue: 'binance_spot',
  marketType: 'spot',
  route: '/api/v3/historicalTrades',
  limit: 1000,
  weight: 25,
  needsApiKey: false,
  // The spot stream drops nothing either.
  keep: () => true,
});

export const binanceSpot: VenueAdapter = {
  venue: 'binance_spot',
  marketType: 'spot',
  wsDataTypes: WS_DATA_TYPES,
  polledDataTypes: POLLED_DATA_TYPES,
  tradeIds: 'contiguous',
  history: { trade: TRADE_HISTORY },

  connections(baseUrl: string, symbols: readonly string[], dataTypes: readonly DataType[]): WsConnectionSpec[] {
    const wanted = requireSupported('binance_spot', WS_DATA_TYPES, dataTypes, 'over WebSocket');
    return streamConnections([
      {
        idPrefix: 'binance_spot',
        url: joinUrl(baseUrl, '/stream'),
        dataTypes: wanted,
        streams: wanted.flatMap((dataType) => symbols.map((s) => `${s.toLowerCase()}@${STREAM_SUFFIX[dataType]}`)),
        staleAfterMs: STALE_AFTER_MS,
      },
    ]);
  },

  normalize(frame: string, receiveTime: number, out: FrameSink): void {
    // Nearly every frame is one trade: read in place, without JSON.parse (see fast-frames).
    const trade = fastBinanceTrade(frame);
    if (trade !== null) {
      out.record(toTrade(trade, 'binance_spot', 'spot', receiveTime));
      return;
    }
    const event = binanceEvent(frame);
    if (event === null) return;
    switch (event.e) {
      case 'trade':
        if (!isTradeEvent(event)) {
          throw new MalformedFrameError('unexpected_shape', `trade event missing or mistyped fields: ${frame.slice(0, 120)}`, 'trade');
        }
        out.record(toTrade(event, 'binance_spot', 'spot', receiveTime));
        return;
      case 'depthUpdate':
        if (!isDepthEvent(event)) {
          throw new MalformedFrameError('unexpected_shape', `depth event missing or mistyped fields: ${frame.slice(0, 120)}`, 'orderbook');
        }
        out.book(toBookUpdate(event, 'binance_spot', 'spot', receiveTime));
        return;
      default:
        if (typeof event.e === 'string' && IGNORED_EVENTS.has(event.e)) return;
        throw new MalformedFrameError('unexpected_shape', `unexpected event type ${JSON.stringify(event.e)}`);
    }
  },

  control: binanceControl,

  instrumentOf: binanceInstrumentOf,

  polls(_restBaseUrl: string, _symbols: readonly string[], dataTypes: readonly PolledDataType[]): RestPoll[] {
    requireSupported('binance_spot', POLLED_DATA_TYPES, dataTypes, 'by polling');
    return [];
  },

  rateLimit: { weightPerWindow: 6000, windowMs: 60_000, usedWeightHeader: 'x-mbx-used-weight-1m' },

  book: binanceRestBook({ rules: binanceSpotSequence, venue: 'binance_spot', marketType: 'spot', depthRoute: '/api/v3/depth', limit: SNAPSHOT_LIMIT, weight: SNAPSHOT_WEIGHT }),
};
