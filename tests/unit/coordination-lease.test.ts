import { describe, expect, it } from 'vitest';
import { expire, holdsAt, holdUntil, leaseKeys, nextLeaseState, tickIntervalMs, type LeaseState } from '../../src/lib/coordination/lease.js';

const TTL = 15_000;
const standby: LeaseState = { held: false };

/** The holder's view as time passes: each step an outcome at a clock reading, then what it holds at `check`. */
describe('lease decisions (injected clock)', () => {
  it('names each lease with its own fence counter', () => {
    expect(leaseKeys('replication:trades')).toEqual({ lease: 'mprism:lease:replication:trades', fence: 'mprism:lease:replication:trades:fence' });
    expect(() => leaseKeys('two words')).toThrow();
    expect(() => leaseKeys('')).toThrow();
  });

  it('holds for 2/3 of the ttl from when the request was sent, not from when the answer came', () => {
    const t0 = 1_000_000;
    const { state, change } = nextLeaseState(standby, { kind: 'acquired', fence: 7, value: '7 a', requestStart: t0 }, TTL);
    expect(change).toEqual({ kind: 'acquired', fence: 7 });
    expect(state).toEqual({ held: true, value: '7 a', fence: 7, validUntil: t0 + 10_000 });
    expect(holdUntil(t0, TTL)).toBe(t0 + 10_000);
    expect(holdsAt(state, t0 + 9_999)).toBe(true);
    // The answer may arrive late (a slow Redis); the clock of the request still bounds the hold.
    expect(holdsAt(state, t0 + 10_000)).toBe(false);
  });

  it('renewals move the hold forward; a renewal that finds another holder loses it at once', () => {
    const t0 = 0;
    let s = nextLeaseState(standby, { kind: 'acquired', fence: 2, value: '2 a', requestStart: t0 }, TTL).state;
    s = nextLeaseState(s, { kind: 'renewed', requestStart: t0 + tickIntervalMs(TTL) }, TTL).state;
    expect(holdsAt(s, t0 + 14_999)).toBe(true);
    expect(holdsAt(s, t0 + 15_000)).toBe(false);
    const taken = nextLeaseState(s, { kind: 'taken' }, TTL, 'replication daemon');
    expect(taken).toEqual({ state: standby, change: { kind: 'lost', reason: 'the lease is held by another replication daemon' } });
    // A standby's renewal outcome changes nothing.
    expect(nextLeaseState(standby, { kind: 'taken' }, TTL)).toEqual({ state: standby, change: null });
    expect(nextLeaseState(standby, { kind: 'renewed', requestStart: 5 }, TTL)).toEqual({ state: standby, change: null });
  });

  it('with Redis unreachable it keeps holding only until the deadline, then gives up by itself', () => {
    const s = nextLeaseState(standby, { kind: 'acquired', fence: 3, value: '3 a', requestStart: 0 }, TTL).state;
    const during = nextLeaseState(s, { kind: 'unreachable' }, TTL);
    expect(during).toEqual({ state: s, change: null });
    expect(expire(during.state, 9_999)).toEqual({ state: s, change: null });
    expect(expire(during.state, 10_000)).toEqual({ state: standby, change: { kind: 'lost', reason: 'could not renew the lease in time' } });
    expect(expire(standby, 10_000)).toEqual({ state: standby, change: null });
  });

  it('a paused holder (its timers late) does not hold by the clock, though its state still says held', () => {
    const s = nextLeaseState(standby, { kind: 'acquired', fence: 4, value: '4 a', requestStart: 0 }, TTL).state;
    // Resumed 30 s later: the deadline timer has not run yet, but work must not go on.
    expect(s.held).toBe(true);
    expect(holdsAt(s, 30_000)).toBe(false);
  });

  it('a standby retries every third of the ttl, never faster than 100 ms', () => {
    expect(tickIntervalMs(15_000)).toBe(5_000);
    expect(tickIntervalMs(150)).toBe(100);
  });
});
