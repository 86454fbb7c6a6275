import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { recordsIn } from '../../src/lib/bus/message-body.js';
import { encodeBatches, MAX_MESSAGE_BYTES, messageIdFor } from '../../src/lib/bus/publisher.js';
import { msgIdFor, subjectFor, type OrderbookRecord } from '../../src/lib/records.js';
import { InvalidValueError } from '../../src/lib/store/decimal.js';
import { RowBatch } from '../../src/lib/store/writer.js';
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
    expect(batches.map((b) => b.to - b.from)).toEqual([3, 3, 1]);
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

describe('message bodies (message-body.ts)', () => {
  const trades = Array.from({ length: 400 }, (_, i) => tradeAt(1_700_000_000_000 + i, String(5_000_000 + i), { price: `6${i}.25`, quantity: '0.0125' }));
  const subject = subjectFor(trades[0]!);
  const text = (data: Uint8Array) => new TextDecoder().decode(data);

  it('sends several trades of a stream as rows under one head, a third of the bytes, and reads back the same records', () => {
    const [batch, ...rest] = encodeBatches(subject, trades, 500);
    expect(rest).toEqual([]);
    const body = JSON.parse(text(batch!.data)) as { trades: object; rows: unknown[][] };
    expect(body.trades).toEqual({ venue: trades[0]!.venue, marketType: trades[0]!.marketType, symbol: trades[0]!.symbol, instrument: trades[0]!.instrument });
    expect(body.rows[0]).toEqual([trades[0]!.eventTime, trades[0]!.receiveTime, trades[0]!.tradeId, trades[0]!.price, trades[0]!.quantity, trades[0]!.side]);
    // toStrictEqual: the same fields, none added or left out.
    expect(decode(batch!.data)).toStrictEqual(trades);
    expect(batch!.data.byteLength * 3).toBeLessThan(JSON.stringify(trades).length);
    // Same records, same Msg-Id as the array form had: a re-publish across the upgrade is still a duplicate.
    expect(batch!.msgId).toBe(messageIdFor(trades));
  });

  it('starts a new message where a trade of another instrument shares the subject', () => {
    const other = { ...trades[2]!, instrument: 'BTCUSDT_OTHER' };
    const mixed = [trades[0]!, trades[1]!, other, trades[3]!];
    const batches = encodeBatches(subject, mixed, 500);
    expect(batches.map((b) => [b.from, b.to])).toEqual([[0, 2], [2, 3], [3, 4]]);
    expect(batches.flatMap((b) => decode(b.data))).toStrictEqual(mixed);
  });

  it('keeps trade rows under MAX_MESSAGE_BYTES', () => {
    const many = Array.from({ length: 12_000 }, (_, i) => tradeAt(1_700_000_000_000 + i, String(9_000_000_000 + i)));
    const batches = encodeBatches(subject, many, 100_000);
    expect(batches.length).toBeGreaterThan(1);
    for (const b of batches) expect(b.data.byteLength).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(batches.flatMap((b) => decode(b.data))).toStrictEqual(many);
  });

  it('still reads the earlier forms: an array of records, and one record', () => {
    expect(recordsIn(JSON.parse(JSON.stringify(trades.slice(0, 3))))).toStrictEqual(trades.slice(0, 3));
    expect(recordsIn(JSON.parse(JSON.stringify(trades[0])))).toStrictEqual([trades[0]]);
  });

  it('hands back a malformed row as it is, for storage to refuse like any malformed record', () => {
    const head = { venue: 'binance_spot', marketType: 'spot', symbol: 'BTC-USDT', instrument: 'BTCUSDT' };
    const good = [1_700_000_000_000, 1_700_000_000_001, '7', '1.5', '2', 'buy'];
    const items = recordsIn({ trades: head, rows: [good, 'x', [1, 2, 3], [...good, 'extra'], [1_700_000_000_000, 1, '8', 'NaN', '2', 'buy']] });
    expect(items).toHaveLength(5);
    const batch = new RowBatch();
    const outcomes = items.map((item) => {
      try {
        batch.add(item);
        return 'row';
      } catch (err) {
        return err instanceof InvalidValueError ? 'invalid' : 'thrown';
      }
    });
    expect(outcomes).toEqual(['row', 'invalid', 'invalid', 'invalid', 'invalid']);
    // A head that is not an object makes the body one (malformed) record, not trades.
    expect(recordsIn({ trades: 'x', rows: [good] })).toEqual([{ trades: 'x', rows: [good] }]);
  });
});
