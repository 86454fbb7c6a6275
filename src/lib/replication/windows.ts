/** Epoch ms, half-open: [start, end). */
export interface TimeWindow {
  start: number;
  end: number;
}

export function alignDown(t: number, windowMs: number): number {
  return Math.floor(t / windowMs) * windowMs;
}

/**
 * The next windows to replicate, oldest first, each ending on a multiple of windowMs and no later than
 * now - safetyLag (rows may still arrive for younger windows). Replication resumes at the watermark; with
 * none it starts at the window holding the earliest row. A watermark off the grid (windowSeconds was
 * changed) gets one short window up to the next boundary, then windows are aligned again.
 */
export function planWindows(args: {
  watermark: number | null;
  earliestData: number | null;
  now: number;
  windowMs: number;
  safetyLagMs: number;
  maxWindows: number;
}): TimeWindow[] {
  const { watermark, earliestData, now, windowMs, safetyLagMs, maxWindows } = args;
  if (!(windowMs > 0)) throw new RangeError(`windowMs must be positive, got ${windowMs}`);
  const start = watermark ?? (earliestData === null ? null : alignDown(earliestData, windowMs));
  if (start === null) return [];
  const limit = now - safetyLagMs;
  const windows: TimeWindow[] = [];
  let cursor = start;
  while (windows.length < maxWindows) {
    const end = alignDown(cursor, windowMs) + windowMs;
    if (end > limit) break;
    windows.push({ start: cursor, end });
    cursor = end;
  }
  return windows;
}

/**
 * Consecutive windows joined into spans of at most maxPerSpan windows. Copy and verification are exact
 * for any range, so catching up a backlog in spans costs a few queries per span instead of per window.
 */
export function mergeWindows(windows: readonly TimeWindow[], maxPerSpan: number): TimeWindow[] {
  const spans: TimeWindow[] = [];
  let current: TimeWindow | null = null;
  let count = 0;
  for (const w of windows) {
    if (current && current.end === w.start && count < maxPerSpan) {
      current.end = w.end;
      count++;
    } else {
      current = { start: w.start, end: w.end };
      spans.push(current);
      count = 1;
    }
  }
  return spans;
}

export function windowToIso(w: TimeWindow): { start: string; end: string } {
  return { start: new Date(w.start).toISOString(), end: new Date(w.end).toISOString() };
}
