import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../lib/config/load.js';
import { freePorts } from '../lib/infra/free-port.js';
import { startLocalServer, stopLocalServer } from '../lib/infra/local-servers.js';
import type { TradeRecord } from '../lib/records.js';
import { createClickHouse, detectDialect } from '../lib/store/client.js';
import { ensureSchema } from '../lib/store/tables.js';
import { insertRecords } from '../lib/store/writer.js';
import { formatRate, median } from './stats.js';

/**
 * What storage's duplicate guard costs: trades inserted into a real ClickHouse (a private
 * clickhouse-server on free ports in a temp dir) in batches of 5000 (storage's at a few tens of
 * thousands a second), plainly (the baseline), with the existence check storage runs on every batch (insertRecords with
 * skipExisting), and as a JetStream re-delivery of batches already stored (all skipped). Each
 * trade has its own millisecond, the most event times a batch can ask about.
 */

const RUNS = 5;
const BATCH = 5000;
const BATCHES_PER_RUN = 4;
const STOP_TIMEOUT_MS = 10_000;

export interface StorageRow {
  name: string;
  rate: number;
  ratio: number;
}

let nextTradeId = 1;

/** A batch of consecutive BTC-USDT trades one millisecond apart, never seen before. */
function freshBatch(): TradeRecord[] {
  const start = 1_700_000_000_000 + nextTradeId;
  return Array.from({ length: BATCH }, (_, i): TradeRecord => {
    const id = nextTradeId++;
    return {
      dataType: 'trade',
      venue: 'binance_spot',
      marketType: 'spot',
      symbol: 'BTC-USDT',
      instrument: 'BTCUSDT',
      eventTime: start + i,
      receiveTime: start + i + 3,
      tradeId: String(id),
      price: `${65000 + (id % 1000) / 100}`,
      quantity: `0.${String(id % 100000).padStart(5, '0')}1`,
      side: id % 2 === 0 ? 'buy' : 'sell',
    };
  });
}

async function timeAsync(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export async function runStorageBench(print: (line: string) => void): Promise<StorageRow[]> {
  const home = mkdtempSync(join(tmpdir(), 'mprism-bench-'));
  const configFile = join(home, 'mprism.yaml');
  const [httpPort, tcpPort] = await freePorts(2);
  writeFileSync(configFile, stringify({ clickhouse: { hot: { httpPort, tcpPort } } }));
  const config = loadConfig({ env: { MPRISM_HOME: home, MPRISM_CONFIG: configFile } });
  const server = config.clickhouse.hot;
  try {
    await startLocalServer(config, 'clickhouse-hot');
    const ch = createClickHouse(server);
    try {
      await ensureSchema(ch, server.database, await detectDialect(ch));
      const insert = (batches: TradeRecord[][], skipExisting: boolean) =>
        timeAsync(async () => {
          for (const b of batches) await insertRecords(ch, server.database, b, { skipExisting });
        });
      const fresh = () => Array.from({ length: BATCHES_PER_RUN }, freshBatch);
      // Warm-up: the first inserts create parts and caches that later runs find in place.
      await insert(fresh(), false);
      await insert(fresh(), true);
      const plain: number[] = [];
      const checked: number[] = [];
      const redelivered: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        plain.push(await insert(fresh(), false));
        const batches = fresh();
        checked.push(await insert(batches, true));
        redelivered.push(await insert(batches, true));
      }
      const rate = (seconds: number[]) => (BATCH * BATCHES_PER_RUN) / median(seconds);
      const samples: [string, number[]][] = [
        ['insert, no check (baseline)', plain],
        ['insert with the existence check', checked],
        ['re-delivered batches (all skipped)', redelivered],
      ];
      const results = samples.map(([name, seconds]): StorageRow => ({ name, rate: rate(seconds), ratio: rate(plain) / rate(seconds) }));
      const width = Math.max(...results.map((r) => r.name.length));
      print(`${'trades into ClickHouse'.padEnd(width)}  ${'rows'.padStart(11)}  time vs baseline`);
      for (const r of results) print(`${r.name.padEnd(width)}  ${formatRate(r.rate).padStart(11)}  ${r.ratio.toFixed(2)}x`);
      print(`medians of ${RUNS} interleaved runs of ${BATCHES_PER_RUN} batches x ${BATCH} trades, clickhouse-server on 127.0.0.1:${httpPort}.`);
      return results;
    } finally {
      await ch.close();
    }
  } finally {
    await stopLocalServer(config, 'clickhouse-hot', STOP_TIMEOUT_MS).catch(() => false);
    rmSync(home, { recursive: true, force: true });
  }
}
