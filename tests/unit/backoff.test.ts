import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/lib/backoff.js';

describe('backoffDelay', () => {
  const policy = { initialMs: 1000, maxMs: 30_000 };

  it('doubles from the initial delay', () => {
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, policy))).toEqual([1000, 2000, 4000, 8000]);
  });

  it('is capped at maxMs, even for huge attempt counts', () => {
    expect(backoffDelay(5, policy)).toBe(30_000);
    expect(backoffDelay(10_000, policy)).toBe(30_000);
  });

  it('jitter only shortens the delay, within the jitter fraction', () => {
    const p = { ...policy, jitter: 0.5 };
    expect(backoffDelay(2, p, () => 0)).toBe(4000);
    expect(backoffDelay(2, p, () => 1)).toBe(2000);
    expect(backoffDelay(2, p, () => 0.5)).toBe(3000);
  });
});
