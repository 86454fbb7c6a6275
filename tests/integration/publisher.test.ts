import type { JetStreamManager, NatsConnection } from 'nats';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../src/lib/bus/connection.js';
import { Publisher } from '../../src/lib/bus/publisher.js';
import { ensureStreams, MARKET_DATA_STREAM } from '../../src/lib/bus/streams.js';
import { subjectFor, type MarketRecord } from '../../src/lib/records.js';
import { tradeAt } from '../helpers/records.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

let infra: TestInfra;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  infra = await startTestInfra({ servers: ['nats'] });
  nc = await connectNats(infra.config, 'test');
  jsm = await nc.jetstreamManager();
  await ensureStreams(jsm, infra.config);
});

afterAll(async () => {
  await nc?.close();
  await infra?.stop();
});

const SYMBOLS = ['BTC-USDT', 'ETH-USDT', 'SOL-USDT'];
let nextId = 1;
/** `n` trades of each symbol, ids unique across the file. */
function trades(n: number): Map<string, MarketRecord[]> {
  const bySubject = new Map<string, MarketRecord[]>();
  for (const symbol of SYMBOLS) {
    const records = Array.from({ length: n }, () => tradeAt(1_700_000_000_000 + nextId, String(nextId++), { symbol }));
    bySubject.set(subjectFor(records[0]!), records);
  }
  return bySubject;
}

async function storedMessages(): Promise<number> {
  return (await jsm.streams.info(MARKET_DATA_STREAM)).state.messages;
}

describe('Publisher.publishBatch', () => {
  it('puts every subject in flight at once while the window has room, and reports each message stored', async () => {
    const publisher = new Publisher(nc, { metrics: new Registry(), component: 'test' });
    const before = await storedMessages();
    const stored: string[] = [];
    for (const [subject, records] of trades(25)) {
      // 25 records, 10 a message: 3 messages per subject, none of them waited for.
      expect(publisher.publishBatch(subject, records, 10, (from, to) => stored.push(...records.slice(from, to).map((r) => (r as { tradeId: string }).tradeId)))).toBeNull();
    }
    await publisher.flush();
    expect(stored).toHaveLength(75);
    expect(new Set(stored).size).toBe(75);
    expect((await storedMessages()) - before).toBe(9);
  });

  it('returns a promise when the window is full, and loses nothing that waited', async () => {
    const publisher = new Publisher(nc, { metrics: new Registry(), component: 'test', maxInFlight: 2 });
    const before = await storedMessages();
    const stored: string[] = [];
    const waits: Promise<void>[] = [];
    for (const [subject, records] of trades(30)) {
      const waiting = publisher.publishBatch(subject, records, 10, (from, to) => stored.push(...records.slice(from, to).map((r) => (r as { tradeId: string }).tradeId)));
      if (waiting !== null) waits.push(waiting);
      // Waited for in order, as the collector's queue does.
      if (waiting !== null) await waiting;
    }
    expect(waits.length).toBeGreaterThan(0);
    await publisher.flush();
    expect(stored).toHaveLength(90);
    expect(new Set(stored).size).toBe(90);
    expect((await storedMessages()) - before).toBe(9);
    expect(publisher.pending).toBe(0);
  });
});
