import { describe, expect, it } from 'vitest';
import { recordsIn, recordsOfBody, tradeRowsIn } from '../../src/lib/bus/message-body.js';
import { encodeBatches } from '../../src/lib/bus/publisher.js';
import { subjectFor, type TradeRecord } from '../../src/lib/records.js';
import { seededRandom } from '../../src/lib/simulator/market.js';
import { tradeAt } from '../helpers/records.js';

/** The general path: what storage read before the hand-written reader. */
function general(text: string): { records: unknown[] } | { throws: true } {
  try {
    return { records: recordsIn(JSON.parse(text)) };
  } catch {
    return { throws: true };
  }
}

function bodyOf(trades: TradeRecord[]): string {
  const [batch] = encodeBatches(subjectFor(trades[0] as TradeRecord), trades, trades.length);
  return new TextDecoder().decode(batch?.data);
}

const random = seededRandom(20261204);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;

function someTrades(n: number): TradeRecord[] {
  const t0 = 1_733_000_000_000 + Math.floor(random() * 1e6);
  return Array.from({ length: n }, (_, i) =>
    tradeAt(t0 + i, String(170_000_000_000 + i), {
      price: pick(['65000.12', '0.00001', '1', '42000', '3500.5']),
      quantity: pick(['0.01234', '3', '0.5']),
      side: pick(['buy', 'sell']),
      venue: pick(['binance_spot', 'okx_derivatives']),
      symbol: pick(['BTC-USDT', 'ETH-USDT']),
    }),
  ).map((t, _, all) => ({ ...t, venue: (all[0] as TradeRecord).venue, symbol: (all[0] as TradeRecord).symbol }));
}

/** Edits a body as a corrupt or foreign producer might: one character changed, inserted or removed, or a known-awkward piece spliced in. */
function edited(text: string): string {
  const at = Math.floor(random() * text.length);
  switch (Math.floor(random() * 4)) {
    case 0:
      return text.slice(0, at) + pick(['"', '\\', ',', '[', ']', '{', '}', ' ', '0', '9', '-', '.', 'e', 'x', '\n', '\u2028', 'é']) + text.slice(at + 1);
    case 1:
      return text.slice(0, at) + pick(['"', '\\', ',', ' ', '0', '-', '1.5', 'null', '\\"', '\\u0041', '[]', '"x"']) + text.slice(at);
    case 2:
      return text.slice(0, at) + text.slice(at + 1);
    default:
      return text.replace(
        pick(['"rows":[[', ',"', '"]', '],[', '"sell"', '"buy"', '1733', '}', '"trades":{']),
        pick(['"rows":[ [', ', "', '" ]', '] ,[', '"se\\u006cl"', '"buy","x"', '01733', '},"rows":[]}', '"trades":5,"t":{', '-1733', '1733.0', '17330000000000000000']),
      );
  }
}

describe('trade-rows bodies read without JSON.parse', () => {
  it('reads what the publisher writes exactly as the general path does', () => {
    for (let k = 0; k < 200; k++) {
      const text = bodyOf(someTrades(1 + Math.floor(random() * 50)));
      if (!text.startsWith('{"trades"')) continue; // a lone record is sent whole
      const fast = tradeRowsIn(text);
      expect(fast).not.toBeNull();
      expect(fast).toEqual(recordsIn(JSON.parse(text)));
    }
  });

  it('an empty rows array and a head with escapes are read too', () => {
    const head = '{"trades":{"venue":"binance_spot","marketType":"spot","symbol":"A\\"B","instrument":"AB"},"rows":[]}';
    expect(tradeRowsIn(head)).toEqual([]);
    const one = '{"trades":{"venue":"v\\u0041","marketType":"spot","symbol":"A","instrument":"A"},"rows":[[1,2,"3","4.5","6","buy"]]}';
    expect(tradeRowsIn(one)).toEqual(recordsIn(JSON.parse(one)));
  });

  it('over 20,000 edited bodies: reads one only as JSON.parse would, leaves the rest to it, and throws where it throws', () => {
    let readFast = 0;
    let fellBack = 0;
    for (let k = 0; k < 20_000; k++) {
      const original = bodyOf(someTrades(2 + Math.floor(random() * 6)));
      let text = edited(original);
      if (random() < 0.2) text = edited(text);
      const expected = general(text);
      const fast = tradeRowsIn(text);
      if (fast !== null) {
        readFast++;
        expect(expected, text).toEqual({ records: fast });
      } else fellBack++;
      if ('throws' in expected) expect(() => recordsOfBody(text), text).toThrow();
      else expect(recordsOfBody(text), text).toEqual(expected.records);
    }
    // Both sides exercised: edits inside strings and digits keep the simple form, the others do not.
    expect(readFast).toBeGreaterThan(2_000);
    expect(fellBack).toBeGreaterThan(2_000);
  });

  it('leaves every other form to JSON.parse', () => {
    const trade = tradeAt(1, '2');
    for (const text of [JSON.stringify(trade), JSON.stringify([trade, trade]), '{"trades":{},"rows":[[1,2,"3","4","5","buy"]],"rows":[]}', '[]', '{"trades":{"venue":"x"},"rows":[[1,2,"3","4","5","buy"]]} ']) {
      expect(tradeRowsIn(text), text).toBeNull();
      expect(recordsOfBody(text)).toEqual(recordsIn(JSON.parse(text)));
    }
  });
});
