/** Compact, fixed-width-friendly formatting for dashboard cells; '-' stands for unknown. */

export function formatDuration(seconds: number | null): string {
  if (seconds === null) return '-';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

export function formatBytes(bytes: number | null): string {
  if (bytes === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

/** 999, 12.3k, 4.56M, 1.20G: row counts span nine orders of magnitude. */
export function formatCount(n: number | null): string {
  if (n === null) return '-';
  const abs = Math.abs(n);
  if (abs < 10_000) return String(Math.round(n));
  const [div, unit] = abs < 1e6 ? [1e3, 'k'] : abs < 1e9 ? [1e6, 'M'] : [1e9, 'G'];
  const v = n / div;
  return `${Math.abs(v) < 10 ? v.toFixed(2) : Math.abs(v) < 100 ? v.toFixed(1) : Math.round(v)}${unit}`;
}

export function formatRate(perSecond: number | null): string {
  if (perSecond === null) return '-';
  return perSecond < 10 && perSecond > 0 ? `${perSecond.toFixed(1)}/s` : `${formatCount(perSecond)}/s`;
}
