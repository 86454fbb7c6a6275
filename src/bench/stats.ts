/** Median of a sample; benchmarks quote medians so one lucky or unlucky run does not set the figure. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Seconds taken by fn, from a monotonic clock. */
export function timeIt(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)} M/s`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)} k/s`;
  return `${perSecond.toFixed(0)} /s`;
}

/** The p-th percentile of samples given as [value, how many times it occurred]: the value at rank ceil(p% of all). */
export function weightedPercentile(samples: readonly (readonly [number, number])[], p: number): number {
  const sorted = [...samples].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((n, [, c]) => n + c, 0);
  if (total === 0) return Number.NaN;
  let seen = 0;
  for (const [value, count] of sorted) {
    seen += count;
    if (seen >= (p / 100) * total) return value;
  }
  return sorted.at(-1)?.[0] ?? Number.NaN;
}
