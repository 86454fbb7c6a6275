import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Venue } from '../lib/config/schema.js';
import { binanceDerivatives } from '../lib/exchanges/binance_derivatives.js';
import { binanceSpot } from '../lib/exchanges/binance_spot.js';
import { okxDerivatives } from '../lib/exchanges/okx_derivatives.js';
import { okxSpot } from '../lib/exchanges/okx_spot.js';
import { recordInCoins } from '../lib/exchanges/contracts.js';
import type { FrameSink, VenueAdapter } from '../lib/exchanges/types.js';
import { BookSync } from '../lib/orderbook/sync.js';
import type { BookMessage } from '../lib/orderbook/types.js';
import { PACKAGE_ROOT } from '../lib/paths.js';
import { formatRate, median, timeIt } from './stats.js';

/**
 * parse+normalize throughput per venue for trade and depth frames, and orderbook updates applied per
 * second, each beside the bare JSON.parse rate of the very same messages in the same run. Inputs are
 * the real captured frames of tests/fixtures/exchanges, cycled; runs are interleaved and medians quoted.
 */

const FIXTURES = join(PACKAGE_ROOT, 'tests', 'fixtures', 'exchanges');
const RUNS = 7;
/** Messages per timed run: long enough that timer resolution and JIT warm-up do not matter. */
const MESSAGES_PER_RUN = 200_000;

function lines(venue: Venue, file: string): string[] {
  return readFileSync(join(FIXTURES, venue, file), 'utf8').split('\n').filter((l) => l.trim() !== '');
}

/** The venues with trade and depth streams, for the instruments in the captured frames. */
const ADAPTERS = {
  binance_spot: binanceSpot,
  binance_derivatives: binanceDerivatives,
  okx_spot: okxSpot,
  okx_derivatives: okxDerivatives(['UNI-USD-SWAP']),
} as const satisfies Partial<Record<Venue, VenueAdapter>>;
type BookVenue = keyof typeof ADAPTERS;

interface Corpus {
  venue: BookVenue;
  kind: 'trade' | 'depth';
  frames: string[];
  /** Contract venues: also size each record in coins, as the collector does before publishing. */
  coinsPerContract?: string;
}

const CORPORA: readonly Corpus[] = [
  { venue: 'binance_spot', kind: 'trade', frames: [...lines('binance_spot', 'trade.jsonl'), ...lines('binance_spot', 'trade_doc.jsonl')] },
  { venue: 'binance_spot', kind: 'depth', frames: lines('binance_spot', 'depth_update.jsonl') },
  // Line 2 of the futures trade file is an insurance-fund fill, which the adapter drops: only MARKET fills count.
  { venue: 'binance_derivatives', kind: 'trade', frames: lines('binance_derivatives', 'trade.jsonl').slice(0, 1) },
  { venue: 'binance_derivatives', kind: 'depth', frames: lines('binance_derivatives', 'depth_update.jsonl') },
  { venue: 'okx_spot', kind: 'trade', frames: lines('okx_spot', 'trades_ws.jsonl') },
  // The first line is the 400-level snapshot; the depth figure is about the 100 ms increments.
  { venue: 'okx_spot', kind: 'depth', frames: lines('okx_spot', 'books_ws.jsonl').slice(1) },
  { venue: 'okx_derivatives', kind: 'trade', frames: lines('okx_derivatives', 'trades_ws.jsonl') },
  // The captured swap is inverse, which the collector refuses; the row measures the cost of sizing only.
  { venue: 'okx_derivatives', kind: 'trade', frames: lines('okx_derivatives', 'trades_ws.jsonl'), coinsPerContract: '0.01' },
  { venue: 'okx_derivatives', kind: 'depth', frames: lines('okx_derivatives', 'books_ws.jsonl').slice(1) },
];

let sunk = 0;
const countingSink: FrameSink = {
  record: () => {
    sunk++;
  },
  book: () => {
    sunk++;
  },
};

function parseRun(frames: readonly string[], n: number): number {
  return timeIt(() => {
    for (let i = 0; i < n; i++) {
      if (JSON.parse(frames[i % frames.length] as string) === null) sunk--;
    }
  });
}

function coinsSink(coinsPerContract: string): FrameSink {
  return {
    record: (r) => {
      if (recordInCoins(r, coinsPerContract) !== r) sunk++;
    },
    book: countingSink.book,
  };
}

function normalizeRun(adapter: VenueAdapter, frames: readonly string[], n: number, sink: FrameSink): number {
  return timeIt(() => {
    for (let i = 0; i < n; i++) adapter.normalize(frames[i % frames.length] as string, 1_700_000_000_000, sink);
  });
}

export interface Row {
  name: string;
  messages: number;
  rate: number;
  jsonParseRate: number;
  ratio: number;
}

function measure(name: string, n: number, run: () => number, baseline: () => number): Row {
  run();
  baseline();
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    base.push(baseline());
    ours.push(run());
  }
  const rate = n / median(ours);
  const jsonParseRate = n / median(base);
  return { name, messages: n, rate, jsonParseRate, ratio: jsonParseRate / rate };
}

/** A book stream of one instrument: its snapshot and the updates that follow, as BookMessages. */
interface BookCorpus {
  name: string;
  adapter: VenueAdapter;
  snapshot: BookMessage;
  updates: BookMessage[];
  /** The raw update frames, for the JSON.parse baseline. */
  frames: string[];
}

function collectBooks(adapter: VenueAdapter, frames: readonly string[]): BookMessage[] {
  const out: BookMessage[] = [];
  for (const f of frames) adapter.normalize(f, 1_700_000_000_000, { record: () => undefined, book: (m) => out.push(m) });
  return out;
}

function bookCorpora(): BookCorpus[] {
  const spot = ADAPTERS.binance_spot;
  const spotFrames = lines('binance_spot', 'depth_update.jsonl').slice(1, 30);
  const spotSnapshot = spot.book?.parseSnapshot?.(lines('binance_spot', 'depth_snapshot_rest.jsonl')[0] as string, 'NKNUSDT', 1_700_000_000_000);
  const futures = ADAPTERS.binance_derivatives;
  const futFrames = lines('binance_derivatives', 'depth_update.jsonl').slice(3, 20);
  const futSnapshot = futures.book?.parseSnapshot?.(lines('binance_derivatives', 'depth_snapshot_rest.jsonl')[0] as string, 'SUSHIUSDT', 1_700_000_000_000);
  const okx = ADAPTERS.okx_spot;
  const okxAll = collectBooks(okx, lines('okx_spot', 'books_ws.jsonl'));
  if (spotSnapshot === undefined || futSnapshot === undefined || okxAll[0] === undefined) throw new Error('fixture books did not parse');
  return [
    { name: 'binance_spot NKNUSDT', adapter: spot, snapshot: spotSnapshot, updates: collectBooks(spot, spotFrames), frames: spotFrames },
    { name: 'binance_derivatives SUSHIUSDT', adapter: futures, snapshot: futSnapshot, updates: collectBooks(futures, futFrames), frames: futFrames },
    { name: 'okx_spot BTC-USDT (CRC32 on)', adapter: okx, snapshot: okxAll[0], updates: okxAll.slice(1), frames: lines('okx_spot', 'books_ws.jsonl').slice(1) },
  ];
}

/**
 * Updates/s through BookSync (sequence check, apply, checksum where the venue sends one, throttled
 * top-N publish). A captured stream is short, so it is replayed many times, each pass from a fresh
 * sync seeded with its snapshot; only the updates are timed.
 */
function bookRun(c: BookCorpus, passes: number): number {
  let total = 0;
  const book = c.adapter.book;
  if (book === null) throw new Error(`${c.name}: no book support`);
  for (let p = 0; p < passes; p++) {
    const sync = new BookSync({ rules: book.rules, source: book.source, checksum: book.checksum, depth: 50, minPublishIntervalMs: 100 });
    let now = 1_700_000_000_000;
    if (book.source === 'rest') {
      sync.onMessage(c.updates[0] as BookMessage, now);
      sync.onSnapshot(c.snapshot, now);
    } else {
      sync.onMessage(c.snapshot, now);
    }
    const start = book.source === 'rest' ? 1 : 0;
    total += timeIt(() => {
      for (let i = start; i < c.updates.length; i++) {
        now += 10;
        const out = sync.onMessage(c.updates[i] as BookMessage, now);
        if (out.gap !== null) throw new Error(`${c.name}: unexpected gap at update ${i}: ${out.gap.detail}`);
      }
    });
  }
  return total;
}

export function runNormalizeBench(print: (line: string) => void): Row[] {
  const rows: Row[] = [];
  for (const c of CORPORA) {
    const adapter = ADAPTERS[c.venue];
    const sink = c.coinsPerContract === undefined ? countingSink : coinsSink(c.coinsPerContract);
    const name = `${c.venue} ${c.kind}${c.coinsPerContract === undefined ? '' : ' in coins'}`;
    rows.push(measure(name, MESSAGES_PER_RUN, () => normalizeRun(adapter, c.frames, MESSAGES_PER_RUN, sink), () => parseRun(c.frames, MESSAGES_PER_RUN)));
  }
  for (const c of bookCorpora()) {
    const passes = Math.ceil(20_000 / c.updates.length);
    const n = passes * (c.updates.length - (c.adapter.book?.source === 'rest' ? 1 : 0));
    rows.push(measure(`orderbook ${c.name}`, n, () => bookRun(c, passes), () => parseRun(c.frames, n)));
  }
  const width = Math.max(...rows.map((r) => r.name.length));
  print(`${'benchmark'.padEnd(width)}  ${'ours'.padStart(11)}  ${'JSON.parse'.padStart(11)}  cost vs JSON.parse`);
  for (const r of rows) {
    print(`${r.name.padEnd(width)}  ${formatRate(r.rate).padStart(11)}  ${formatRate(r.jsonParseRate).padStart(11)}  ${r.ratio.toFixed(2)}x`);
  }
  print(`medians of ${RUNS} interleaved runs. trade/depth rows: JSON text -> records and book messages (parsing included);`);
  print('"in coins": plus the contract-to-coin sizing the collector applies to OKX swap records before publishing.');
  print('orderbook rows: normalized updates through BookSync (sequence check, apply, checksum if sent, throttled top-50 publish),');
  print(`beside JSON.parse of the same frames. (${sunk} items sunk)`);
  return rows;
}
