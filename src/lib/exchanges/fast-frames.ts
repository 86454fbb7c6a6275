import { isDecimal } from '../json-guards.js';

/**
 * A fast path for the frames that make up nearly all of the traffic: one trade each (Binance
 * `@trade`) or a few (OKX `trades`). Instead of JSON.parse building an object per frame, the frame
 * is read in place in the exact compact form the venues send: keys in quotes, no whitespace,
 * strings without escapes, integers without sign, fraction or leading zero. Anything else (another
 * event, an unknown or repeated key, a field of the wrong type or form, malformed JSON) makes the
 * reader give up with null, and the adapter parses the frame the general way, which then accepts,
 * skips or rejects it as it always did. So the fast path decides nothing on its own: what it
 * accepts, the general path accepts with the same result.
 */

let src = '';
let pos = 0;

function lit(text: string): boolean {
  if (!src.startsWith(text, pos)) return false;
  pos += text.length;
  return true;
}

/** A string without escapes or control characters (JSON.parse would have to decode those); null otherwise. */
function str(): string | null {
  if (src.charCodeAt(pos) !== 34) return null;
  const start = pos + 1;
  for (let j = start; j < src.length; j++) {
    const c = src.charCodeAt(j);
    if (c === 34) {
      pos = j + 1;
      return src.slice(start, j);
    }
    if (c === 92 || c < 32) return null;
  }
  return null;
}

/** A non-negative integer of at most 15 digits (so exactly a safe integer), no leading zero; -1 otherwise. */
function uint(): number {
  let n = 0;
  let j = pos;
  for (; j < src.length && j - pos < 16; j++) {
    const c = src.charCodeAt(j);
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
  }
  const digits = j - pos;
  if (digits === 0 || digits > 15 || (digits > 1 && src.charCodeAt(pos) === 48)) return -1;
  pos = j;
  return n;
}

/** true, false, or null when neither. */
function bool(): boolean | null {
  if (lit('true')) return true;
  if (lit('false')) return false;
  return null;
}

/** The fields of a Binance trade event the adapters use; X only where the frame has it. */
export interface FastBinanceTrade {
  e: 'trade';
  E: number;
  T: number;
  s: string;
  t: number;
  p: string;
  q: string;
  m: boolean;
  X?: string;
}

// One bit per key, to refuse a repeated key (JSON.parse would keep the last; the general path decides).
const K_E = 1;
const K_BIG_E = 2;
const K_T = 4;
const K_S = 8;
const K_ID = 16;
const K_P = 32;
const K_Q = 64;
const K_M = 128;
const K_BIG_M = 256;
const K_X = 512;
const K_B = 1024;
const K_A = 2048;
const REQUIRED = K_E | K_BIG_E | K_T | K_S | K_ID | K_P | K_Q | K_M;

/** A `{"e":"trade",...}` object at pos, spot or USD-M fields in any order; null when not exactly that. */
function binanceTradeObject(): FastBinanceTrade | null {
  if (!lit('{')) return null;
  let seen = 0;
  let E = -1;
  let T = -1;
  let t = -1;
  let s: string | null = null;
  let p: string | null = null;
  let q: string | null = null;
  let m: boolean | null = null;
  let X: string | null = null;
  for (;;) {
    if (src.charCodeAt(pos) !== 34 || src.charCodeAt(pos + 2) !== 34 || src.charCodeAt(pos + 3) !== 58) return null;
    const key = src.charCodeAt(pos + 1);
    pos += 4;
    let bit: number;
    switch (key) {
      case 101: // e
        bit = K_E;
        if (!lit('"trade"')) return null;
        break;
      case 69: // E
        bit = K_BIG_E;
        E = uint();
        if (E < 0) return null;
        break;
      case 84: // T
        bit = K_T;
        T = uint();
        if (T < 0) return null;
        break;
      case 115: // s
        bit = K_S;
        s = str();
        if (s === null) return null;
        break;
      case 116: // t
        bit = K_ID;
        t = uint();
        if (t < 0) return null;
        break;
      case 112: // p
        bit = K_P;
        p = str();
        if (p === null || !isDecimal(p)) return null;
        break;
      case 113: // q
        bit = K_Q;
        q = str();
        if (q === null || !isDecimal(q)) return null;
        break;
      case 109: // m
        bit = K_M;
        m = bool();
        if (m === null) return null;
        break;
      case 77: // M: spot's "best match", always true; read but not used
        bit = K_BIG_M;
        if (bool() === null) return null;
        break;
      case 88: // X: USD-M's execution type
        bit = K_X;
        X = str();
        if (X === null) return null;
        break;
      case 98: // b, a: buyer and seller order ids of spot frames from before 2023; not used
        bit = K_B;
        if (uint() < 0) return null;
        break;
      case 97:
        bit = K_A;
        if (uint() < 0) return null;
        break;
      default:
        return null;
    }
    if ((seen & bit) !== 0) return null;
    seen |= bit;
    if (lit('}')) break;
    if (!lit(',')) return null;
  }
  if ((seen & REQUIRED) !== REQUIRED) return null;
  const event: FastBinanceTrade = { e: 'trade', E, T, s: s as string, t, p: p as string, q: q as string, m: m as boolean };
  if (X !== null) event.X = X;
  return event;
}

/**
 * A Binance frame holding one trade event, bare or in a combined-stream envelope
 * (`{"stream":"...","data":{...}}`); null for any other frame, or one not in the compact form.
 */
export function fastBinanceTrade(frame: string): FastBinanceTrade | null {
  src = frame;
  pos = 0;
  let event: FastBinanceTrade | null;
  if (lit('{"stream":')) {
    if (str() === null || !lit(',"data":')) return null;
    event = binanceTradeObject();
    if (event === null || !lit('}')) return null;
  } else {
    event = binanceTradeObject();
    if (event === null) return null;
  }
  return pos === frame.length ? event : null;
}

/** One item of an OKX `trades` push, the fields the adapter uses. */
export interface FastOkxTrade {
  instId: string;
  tradeId: string;
  px: string;
  sz: string;
  side: 'buy' | 'sell';
  ts: string;
}

const EPOCH_MS = /^\d{1,16}$/;

/** `{"instId":...,"tradeId":...,...}` as OKX sends it (its own key order, count and seqId optional); null otherwise. */
function okxTradeObject(): FastOkxTrade | null {
  if (!lit('{"instId":')) return null;
  const instId = str();
  if (instId === null || !lit(',"tradeId":')) return null;
  const tradeId = str();
  if (tradeId === null || tradeId.length === 0 || !lit(',"px":')) return null;
  const px = str();
  if (px === null || !isDecimal(px) || !lit(',"sz":')) return null;
  const sz = str();
  if (sz === null || !isDecimal(sz) || !lit(',"side":')) return null;
  let side: 'buy' | 'sell';
  if (lit('"buy"')) side = 'buy';
  else if (lit('"sell"')) side = 'sell';
  else return null;
  if (!lit(',"ts":')) return null;
  const ts = str();
  if (ts === null || !EPOCH_MS.test(ts)) return null;
  if (lit(',"count":') && str() === null) return null;
  if (lit(',"seqId":') && uint() < 0) return null;
  if (!lit('}')) return null;
  return { instId, tradeId, px, sz, side, ts };
}

/**
 * An OKX `trades` push (`{"arg":{"channel":"trades","instId":"..."},"data":[...]}`): its items, or
 * null for any other frame, or one not in the compact form.
 */
export function fastOkxTrades(frame: string): FastOkxTrade[] | null {
  src = frame;
  pos = 0;
  if (!lit('{"arg":{"channel":"trades","instId":') || str() === null || !lit('},"data":[')) return null;
  const items: FastOkxTrade[] = [];
  if (!lit(']')) {
    for (;;) {
      const item = okxTradeObject();
      if (item === null) return null;
      items.push(item);
      if (lit(']')) break;
      if (!lit(',')) return null;
    }
  }
  return lit('}') && pos === frame.length ? items : null;
}
