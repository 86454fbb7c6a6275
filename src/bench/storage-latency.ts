import { JSONCodec } from 'nats';
import { sleep } from '../lib/backoff.js';
import { connectNats } from '../lib/bus/connection.js';
import { storageDurable, STREAM_SPECS } from '../lib/bus/streams.js';
import { msgIdFor, subjectFor, type MarketRecord, type OrderbookRecord, type TradeRecord } from '../lib/records.js';
import { selectRows } from '../lib/store/client.js';
import { BenchPlatform } from './platform.js';
import { weightedPercentile } from './stats.js';

/**
 * Time from JetStream storing a record (its publish ack) to the record being queryable in ClickHouse
 * hot, through the real storage daemon (`node dist/daemons/main.js storage`, its own process) on a
 * private nats-server and clickhouse-server. The load is the default configuration's: 20 trades/s
 * for each of 8 venue x symbol pairs, and 10 orderbook snapshots/s (50 levels a side) for each of
 * the same 8 books. Hot is polled every POLL_MS, so figures are that coarse. Also reports the
 * storage consumers' redeliveries: each one is a message that waited for the ack timeout.
 * MPRISM_BENCH_SECONDS sets the publishing time (default 30). MPRISM_BENCH_STALL_MS freezes the
 * storage process (SIGSTOP/SIGCONT) that long every 0.7-1.3 s, as a busy machine's scheduler or a
 * long GC pause does: the condition under which issue 7 saw pulled messages wait for the ack timeout.
 */

const PAIRS = [
  ['binance_spot', 'spot', 'BTC-USDT'],
  ['binance_spot', 'spot', 'ETH-USDT'],
  ['binance_derivatives', 'perpetual', 'BTC-USDT'],
  ['binance_derivatives', 'perpetual', 'ETH-USDT'],
  ['okx_spot', 'spot', 'BTC-USDT'],
  ['okx_spot', 'spot', 'ETH-USDT'],
  ['okx_derivatives', 'perpetual', 'BTC-USDT'],
  ['okx_derivatives', 'perpetual', 'ETH-USDT'],
] as const;
const TRADES_PER_SECOND = 20;
const SNAPSHOTS_PER_SECOND = 10;
const DEPTH = 50;
const POLL_MS = 25;
/** After publishing: long enough for a message that waits out the default 30 s ack timeout to arrive. */
const SETTLE_MS = 45_000;

export interface LatencyFigures {
  table: string;
  count: number;
  p50: number;
  p99: number;
  max: number;
  missing: number;
}

const percentile = (sorted: readonly number[], p: number): number => weightedPercentile(sorted.map((v) => [v, 1] as const), p);

function record(n: number, base: number, kind: 'trade' | 'orderbook', pair: (typeof PAIRS)[number]): MarketRecord {
  const [venue, marketType, symbol] = pair;
  // One counter for both tables: every record has its own event time, which is how the poller finds it.
  const common = { venue, marketType, symbol, instrument: symbol.replace('-', ''), eventTime: base + n, receiveTime: base + n + 1 };
  if (kind === 'trade') {
    return { ...common, dataType: 'trade', tradeId: String(n), price: `${65000 + (n % 1000) / 100}`, quantity: '0.0125', side: n % 2 ? 'buy' : 'sell' } satisfies TradeRecord;
  }
  const levels = (from: number, step: number) => Array.from({ length: DEPTH }, (_, i) => [`${from + i * step}.5`, `1.${i}`] as const);
  return { ...common, dataType: 'orderbook', lastUpdateId: n, bestBidPrice: '64999.5', bestAskPrice: '65000.5', bids: levels(64999, -1), asks: levels(65000, 1) } satisfies OrderbookRecord;
}

export async function runStorageLatencyBench(print: (line: string) => void): Promise<LatencyFigures[]> {
  const seconds = Number(process.env.MPRISM_BENCH_SECONDS ?? 30);
  const stallMs = Number(process.env.MPRISM_BENCH_STALL_MS ?? 0);
  const platform = await BenchPlatform.start({ settings: () => ({}) });
  const { config, ch, database } = platform;
  try {
    const nc = await connectNats(config, 'bench');
    try {
      const jsm = await nc.jetstreamManager();
      platform.spawn('storage');

      const js = nc.jetstream();
      const codec = JSONCodec<MarketRecord>();
      const base = Date.now();
      const storedAt = new Map<number, number>();
      const tableOf = new Map<number, string>();
      const latency = new Map<string, number[]>([
        ['trades', []],
        ['orderbooks', []],
      ]);
      let next = 0;
      let publishing = true;
      const publish = (kind: 'trade' | 'orderbook', pair: (typeof PAIRS)[number]) => {
        const n = ++next;
        const r = record(n, base, kind, pair);
        tableOf.set(n, kind === 'trade' ? 'trades' : 'orderbooks');
        void js.publish(subjectFor(r), codec.encode(r), { msgID: msgIdFor(r) }).then(() => storedAt.set(n, Date.now()));
      };

      // Every record becomes queryable once: the poller asks for event times at or after the oldest unseen one.
      const seen = new Set<number>();
      let stopAt = Number.POSITIVE_INFINITY;
      const poller = (async () => {
        let floor = base + 1;
        while (publishing || seen.size < next) {
          const polledAt = Date.now();
          for (const table of ['trades', 'orderbooks']) {
            for (const { t } of await selectRows<{ t: string }>(ch, `SELECT toUInt64(event_time) AS t FROM ${database}.${table} WHERE event_time >= ${floor}`)) {
              const n = Number(t) - base;
              if (seen.has(n)) continue;
              seen.add(n);
              const stored = storedAt.get(n);
              if (stored !== undefined) latency.get(table)?.push(Math.max(0, polledAt - stored));
            }
          }
          while (seen.has(floor - base)) floor++;
          if (!publishing && Date.now() > stopAt + SETTLE_MS) break;
          await sleep(POLL_MS);
        }
      })();

      let stalls = 0;
      const staller = (async () => {
        while (stallMs > 0 && publishing) {
          await sleep(700 + Math.random() * 600);
          platform.signal('storage', 'SIGSTOP');
          await sleep(stallMs);
          platform.signal('storage', 'SIGCONT');
          stalls++;
        }
      })();

      // Paced on the clock, not on timer ticks: a late tick publishes what it owes.
      const start = Date.now();
      let trades = 0;
      let snapshots = 0;
      while (Date.now() - start < seconds * 1000) {
        const elapsed = (Date.now() - start) / 1000;
        for (; trades < elapsed * TRADES_PER_SECOND; trades++) for (const p of PAIRS) publish('trade', p);
        for (; snapshots < elapsed * SNAPSHOTS_PER_SECOND; snapshots++) for (const p of PAIRS) publish('orderbook', p);
        await sleep(10);
      }
      stopAt = Date.now();
      publishing = false;
      await staller;
      await poller;

      const figures: LatencyFigures[] = [...latency].map(([table, ms]) => {
        const sorted = [...ms].sort((a, b) => a - b);
        const expected = [...tableOf.values()].filter((t) => t === table).length;
        return { table, count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN, missing: expected - sorted.length };
      });
      print(`${'table'.padEnd(10)}  ${'records'.padStart(7)}  ${'p50 ms'.padStart(7)}  ${'p99 ms'.padStart(7)}  ${'max ms'.padStart(7)}  missing`);
      for (const f of figures) {
        print(`${f.table.padEnd(10)}  ${String(f.count).padStart(7)}  ${String(f.p50).padStart(7)}  ${String(f.p99).padStart(7)}  ${String(f.max).padStart(7)}  ${f.missing}`);
      }
      for (const s of STREAM_SPECS) {
        const info = await jsm.consumers.info(s.name, storageDurable(s.name));
        // Every delivery takes a consumer sequence number: beyond the stream's, they are redeliveries.
        print(`${s.name}: ${info.delivered.stream_seq} messages, ${info.delivered.consumer_seq - info.delivered.stream_seq} redeliveries, ${info.num_ack_pending} unacked`);
      }
      print(`${seconds} s of publishing at ${PAIRS.length * TRADES_PER_SECOND} trades/s and ${PAIRS.length * SNAPSHOTS_PER_SECOND} snapshots/s; hot polled every ${POLL_MS} ms.`);
      if (stalls > 0) print(`storage frozen ${stalls} times for ${stallMs} ms (MPRISM_BENCH_STALL_MS).`);
      return figures;
    } finally {
      await nc.close();
    }
  } finally {
    await platform.stop();
  }
}
