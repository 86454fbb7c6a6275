import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeBatches, MAX_MESSAGE_BYTES, messageIdFor, recordsIn } from '../../src/lib/bus/publisher.js';
import { msgIdFor, subjectFor, type OrderbookRecord } from '../../src/lib/records.js';
import { tradeAt } from '../helpers/records.js';

const decode = (data: Uint8Array) => recordsIn(JSON.parse(new TextDecoder().decode(data)));

describe('encodeBatches', () => {
  const trades = Array.from({ length: 7 }, (_, i) => tradeAt(1_700_000_000_000 + i, String(100 + i)));
  const subject = subjectFor(trades[0]!);

  it('keeps a lone record as a plain object under its own Msg-Id', () => {
    const [only, ...rest] = encodeBatches(subject, trades.slice(0, 1), 500);
    expect(rest).toEqual([]);
    expect(JSON.parse(new TextDecoder().decode(only!.data))).toEqual(trades[0]);
    expect(only!.msgId).toBe(msgIdFor(trades[0]!));
  });

  it('cuts at maxRecords, in order, and every record comes back exactly once', () => {
    const batches = encodeBatches(subject, trades, 3);
    expect(batches.map((b) => b.records.length)).toEqual([3, 3, 1]);
    expect(batches.flatMap((b) => decode(b.data))).toEqual(trades);
    expect(batches.every((b) => b.subject === subject)).toBe(true);
  });

  it('gives the same records the same Msg-Id, and different records a different one', () => {
    const a = encodeBatches(subject, trades, 500)[0]!.msgId;
    expect(encodeBatches(subject, trades.map((t) => ({ ...t })), 500)[0]!.msgId).toBe(a);
    expect(messageIdFor(trades)).toBe(a);
    // Same first record and count, one other record: the hash tells them apart.
    const other = [...trades.slice(0, 6), tradeAt(1_700_000_000_009, '999')];
    expect(messageIdFor(other)).not.toBe(a);
    expect(a.startsWith(`${msgIdFor(trades[0]!)}+6:`)).toBe(true);
  });

  it('keeps the Msg-Ids of earlier versions: sha1 over each record id and a newline', () => {
    // Stable across versions, so a batch re-published by an upgraded collector is still a duplicate.
    const hash = createHash('sha1');
    for (const t of trades) hash.update(msgIdFor(t)).update('\n');
    expect(messageIdFor(trades)).toBe(`${msgIdFor(trades[0]!)}+6:${hash.digest('hex').slice(0, 20)}`);
  });

  it('keeps a message under MAX_MESSAGE_BYTES, a single larger record alone', () => {
    const level = (i: number) => [`${60000 + i}.5`, '1.25'] as const;
    const book = (i: number, depth: number): OrderbookRecord => ({
      ...tradeAt(1_700_000_000_000 + i, 'x'),
      dataType: 'orderbook',
      lastUpdateId: i,
      bestBidPrice: '1',
      bestAskPrice: '2',
      bids: Array.from({ length: depth }, (_, j) => level(j)),
      asks: Array.from({ length: depth }, (_, j) => level(j)),
    }) as unknown as OrderbookRecord;
    const books = Array.from({ length: 200 }, (_, i) => book(i, 50));
    const batches = encodeBatches(subjectFor(books[0]!), books, 10_000);
    expect(batches.length).toBeGreaterThan(1);
    for (const b of batches) expect(b.data.byteLength).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(batches.flatMap((b) => decode(b.data))).toHaveLength(200);
    const huge = book(1, 8000);
    const [alone] = encodeBatches(subjectFor(huge), [huge], 10_000);
    expect(alone!.data.byteLength).toBeGreaterThan(MAX_MESSAGE_BYTES);
  });
});
