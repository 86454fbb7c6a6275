import { getEventListeners, getMaxListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { boundedSignal } from '../../src/lib/abort.js';

describe('boundedSignal', () => {
  it('aborts with its parent, with the same reason, and allows the given number of listeners', () => {
    const parent = new AbortController();
    const { signal } = boundedSignal(parent.signal, 300);
    expect(getMaxListeners(signal)).toBe(300);
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(1);
    parent.abort(new Error('shutdown'));
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).message).toBe('shutdown');
  });

  it('starts aborted under an aborted parent, and release detaches it from a live one', () => {
    const aborted = AbortSignal.abort('gone');
    expect(boundedSignal(aborted, 5).signal.reason).toBe('gone');
    const parent = new AbortController();
    const child = boundedSignal(parent.signal, 5);
    child.release();
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(0);
    parent.abort();
    expect(child.signal.aborted).toBe(false);
  });
});
