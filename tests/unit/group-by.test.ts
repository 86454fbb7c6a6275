import { describe, expect, it } from 'vitest';
import { groupBy } from '../../src/lib/group-by.js';

describe('groupBy', () => {
  it('keeps the items of a group in order, and the groups in order of their first item', () => {
    const groups = groupBy(['b1', 'a1', 'b2', 'c1', 'a2'], (s) => s[0]);
    expect([...groups]).toEqual([
      ['b', ['b1', 'b2']],
      ['a', ['a1', 'a2']],
      ['c', ['c1']],
    ]);
    expect(groupBy([], (s: string) => s).size).toBe(0);
  });
});
