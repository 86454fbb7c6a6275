import { describe, expect, it } from 'vitest';
import { mergeWindows, planWindows } from '../../src/lib/replication/windows.js';

const M = 60_000;
const base = { windowMs: M, safetyLagMs: 15_000, maxWindows: 100 };

describe('planWindows', () => {
  it('plans nothing without a watermark or data', () => {
    expect(planWindows({ ...base, watermark: null, earliestData: null, now: 10 * M })).toEqual([]);
  });

  it('starts at the window holding the earliest row and stops before windows still inside the safety lag', () => {
    const w = planWindows({ ...base, watermark: null, earliestData: 2 * M + 1234, now: 5 * M + 14_999 });
    // The window ending at 5M is not 15 s old yet at 5M + 14.999 s.
    expect(w).toEqual([
      { start: 2 * M, end: 3 * M },
      { start: 3 * M, end: 4 * M },
    ]);
    expect(planWindows({ ...base, watermark: null, earliestData: 2 * M, now: 5 * M + 15_000 }).at(-1)).toEqual({ start: 4 * M, end: 5 * M });
  });

  it('resumes at the watermark, which wins over the earliest data', () => {
    expect(planWindows({ ...base, watermark: 7 * M, earliestData: 0, now: 9 * M + 20_000 })).toEqual([
      { start: 7 * M, end: 8 * M },
      { start: 8 * M, end: 9 * M },
    ]);
    expect(planWindows({ ...base, watermark: 9 * M, earliestData: 0, now: 9 * M + 20_000 })).toEqual([]);
  });

  it('realigns a watermark left off the grid by a changed window size', () => {
    expect(planWindows({ ...base, watermark: 30_000, earliestData: null, now: 3 * M })).toEqual([
      { start: 30_000, end: M },
      { start: M, end: 2 * M },
    ]);
  });

  it('caps the number of windows', () => {
    expect(planWindows({ ...base, maxWindows: 2, watermark: 0, earliestData: null, now: 100 * M })).toHaveLength(2);
  });

  it('rejects a non-positive window size', () => {
    expect(() => planWindows({ ...base, windowMs: 0, watermark: 0, earliestData: null, now: M })).toThrow(RangeError);
  });
});

describe('mergeWindows', () => {
  it('joins consecutive windows into spans of at most N windows and keeps gaps apart', () => {
    const ws = [0, 1, 2, 3, 4, 6].map((i) => ({ start: i * M, end: (i + 1) * M }));
    expect(mergeWindows(ws, 2)).toEqual([
      { start: 0, end: 2 * M },
      { start: 2 * M, end: 4 * M },
      { start: 4 * M, end: 5 * M },
      { start: 6 * M, end: 7 * M },
    ]);
    expect(mergeWindows(ws, 1)).toEqual(ws);
    expect(mergeWindows([], 5)).toEqual([]);
  });
});
