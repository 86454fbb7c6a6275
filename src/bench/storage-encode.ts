import { recordsIn, recordsOfBody } from '../lib/bus/message-body.js';
import { encodeBatches } from '../lib/bus/publisher.js';
import { subjectFor, type TradeRecord } from '../lib/records.js';
import { TABLES } from '../lib/store/tables.js';
import { insertBody, RowBatch } from '../lib/store/writer.js';
import { formatRate, median } from './stats.js';

/**
 * Storage's own CPU per trade, without NATS or ClickHouse: message bodies as the collector publishes
 * them (bus/publisher.ts encodeBatches, 500 trades a message) are parsed, encoded into rows
 * (RowBatch, as ingest does per message) and made into insert bodies (insertBody, per batch of about
 * 5000 rows, as storage makes them at a few tens of thousands a second), once as storage reads
 * them (recordsOfBody: trade rows by hand) and once through JSON.parse (the general path, which
 * storage used before). The baseline, in the same run and on the same bodies, is decoding them
 * alone (TextDecoder + JSON.parse, what nats' msg.json() does). CPU time (process.cpuUsage: GC threads included) of interleaved runs,
 * medians. A run whose bodies do not hold every trade exactly once fails.
 */

const RUNS = 7;
const MESSAGES = 400;
const PER_MESSAGE = 500;
const BATCH_MESSAGES = 10;

export interface StorageEncodeRow {
  name: string;
  /** CPU microseconds per trade. */
  usPerTrade: number;
  ratio: number;
}

/** Trades of 12 streams (4 venues x 3 symbols), interleaved as a busy stream delivers them. */
function messages(): Uint8Array[] {
  const venues = [
    ['binance_spot', 'spot', (b: string) => `${b}USDT`],
    ['binance_derivatives', 'perpetual', (b: string) => `${b}USDT`],
    ['okx_spot', 'spot', (b: string) => `${b}-USDT`],
    ['okx_derivatives', 'perpetual', (b: string) => `${b}-USDT-SWAP`],
  ] as const;
  const out: Uint8Array[] = [];
  let id = 1;
  for (let m = 0; m < MESSAGES; m++) {
    const [venue, marketType, instrumentOf] = venues[m % venues.length] as (typeof venues)[number];
    const base = (['BTC', 'ETH', 'SOL'] as const)[Math.floor(m / venues.length) % 3] as string;
    const records = Array.from({ length: PER_MESSAGE }, (_, i): TradeRecord => {
      const n = id++;
      const t = 1_700_000_000_000 + m * 40 + Math.floor(i / 12);
      return {
        dataType: 'trade',
        venue,
        marketType,
        symbol: `${base}-USDT`,
        instrument: instrumentOf(base),
        eventTime: t,
        receiveTime: t + 3,
        tradeId: String(n),
        price: `${65000 + (n % 1000) / 100}`,
        quantity: `0.${String(n % 100000).padStart(5, '0')}1`,
        side: n % 2 === 0 ? 'buy' : 'sell',
      };
    });
    const batches = encodeBatches(subjectFor(records[0] as TradeRecord), records, PER_MESSAGE);
    out.push(...batches.map((b) => b.data));
  }
  return out;
}

const decoder = new TextDecoder();

function cpuSeconds(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

export async function runStorageEncodeBench(print: (line: string) => void): Promise<StorageEncodeRow[]> {
  const bodies = messages();
  const trades = bodies.length * PER_MESSAGE;
  let failure: string | null = null;
  const parseOnly = () => {
    let n = 0;
    for (const body of bodies) n += recordsIn(JSON.parse(decoder.decode(body))).length;
    if (n !== trades) failure = `parsed ${n} trades of ${trades}`;
  };
  /** Every trade's line once, in the bodies the timed runs build: checked on the warm-up run. */
  const check = (chunks: string[]) => {
    // A TabSeparated line holds no raw tab inside a cell.
    const tradeIdColumn = TABLES.find((t) => t.dataType === 'trade')?.columns.findIndex((c) => c.name === 'trade_id') ?? -1;
    const ids = chunks.flatMap((c) => c.split('\n')).map((line) => line.split('\t')[tradeIdColumn]);
    if (new Set(ids).size !== trades || ids.length !== trades) failure = `${ids.length} lines (${new Set(ids).size} distinct trades) for ${trades} trades`;
  };
  const viaJsonParse = (text: string) => recordsIn(JSON.parse(text));
  const ingest = (all?: string[], read: (text: string) => unknown[] = recordsOfBody) => {
    let inserted = 0;
    for (let i = 0; i < bodies.length; i += BATCH_MESSAGES) {
      const batch = new RowBatch();
      for (const body of bodies.slice(i, i + BATCH_MESSAGES)) for (const record of read(decoder.decode(body))) batch.add(record);
      for (const rows of batch.byTable()) {
        const insert = insertBody(rows, new Set());
        inserted += insert.inserted;
        all?.push(...insert.chunks);
      }
    }
    if (inserted !== trades) failure = `${inserted} rows for ${trades} trades`;
  };
  // Warm-up: the JIT compiles both paths before anything is timed.
  parseOnly();
  const chunks: string[] = [];
  ingest(chunks);
  check(chunks);
  const general: string[] = [];
  ingest(general, viaJsonParse);
  if (general.join('') !== chunks.join('')) failure = 'the general path built other insert bodies';
  const parsed: number[] = [];
  const encoded: number[] = [];
  const encodedGeneral: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    parsed.push(cpuSeconds(parseOnly));
    encoded.push(cpuSeconds(() => ingest()));
    encodedGeneral.push(cpuSeconds(() => ingest(undefined, viaJsonParse)));
  }
  if (failure !== null) throw new Error(`storage-encode: ${failure}`);
  const base = median(parsed);
  const rows: StorageEncodeRow[] = [
    { name: 'JSON.parse of the bodies (baseline)', usPerTrade: (base / trades) * 1e6, ratio: 1 },
    { name: 'read, encode rows, build insert bodies (storage)', usPerTrade: (median(encoded) / trades) * 1e6, ratio: median(encoded) / base },
    { name: 'the same, read through JSON.parse', usPerTrade: (median(encodedGeneral) / trades) * 1e6, ratio: median(encodedGeneral) / base },
  ];
  const width = Math.max(...rows.map((r) => r.name.length));
  print(`${'trades, storage CPU outside NATS and ClickHouse'.padEnd(width)}  ${'µs/trade'.padStart(8)}  ${'rate'.padStart(10)}  vs baseline`);
  for (const r of rows) print(`${r.name.padEnd(width)}  ${r.usPerTrade.toFixed(2).padStart(8)}  ${formatRate(1e6 / r.usPerTrade).padStart(10)}  ${r.ratio.toFixed(2)}x`);
  print(`medians of ${RUNS} interleaved runs over ${bodies.length} messages of ${PER_MESSAGE} trades (CPU time, GC included).`);
  return rows;
}
