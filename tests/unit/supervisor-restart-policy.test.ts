import { describe, expect, it } from 'vitest';
import { restartDecision } from '../../src/lib/supervisor/supervisor.js';

const policy = { stableAfterMs: 60_000, maxFastFailures: 4, initialBackoffMs: 1000, maxBackoffMs: 8000 };
const noJitter = () => 0;

describe('restartDecision', () => {
  it('backs off exponentially while a daemon keeps dying quickly, capped', () => {
    let fast = 0;
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const d = restartDecision(fast, 500, { ...policy, maxFastFailures: 10 }, noJitter);
      expect(d.action).toBe('restart');
      if (d.action === 'restart') delays.push(d.delayMs);
      fast = d.fastFailures;
    }
    expect(delays).toEqual([1000, 2000, 4000]);
    expect(restartDecision(8, 500, { ...policy, maxFastFailures: 100 }, noJitter)).toMatchObject({ delayMs: 8000 });
  });

  it('gives up (errored) after maxFastFailures quick exits in a row', () => {
    expect(restartDecision(2, 500, policy, noJitter)).toEqual({ action: 'restart', delayMs: 4000, fastFailures: 3 });
    expect(restartDecision(3, 500, policy, noJitter)).toEqual({ action: 'give-up', fastFailures: 4 });
  });

  it('resets the count and the backoff after a stable uptime', () => {
    expect(restartDecision(3, 60_000, policy, noJitter)).toEqual({ action: 'restart', delayMs: 1000, fastFailures: 0 });
  });
});
