/** Rendering helpers shared by commands: plain text tables, TTY-only color, JSON. */
export { formatBytes, formatDuration } from '../lib/tui/format.js';
const useColor = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;

const paint = (code: number) => (s: string) => (useColor ? `\x1b[${code}m${s}\x1b[0m` : s);
export const green = paint(32);
export const red = paint(31);
export const yellow = paint(33);
export const dim = paint(2);
export const bold = paint(1);

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function println(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Progress goes to stderr so --json stdout stays machine-readable. */
export function progress(line: string): void {
  process.stderr.write(`${dim(line)}\n`);
}

// eslint-disable-next-line no-control-regex
const visibleLength = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: string[]) => cells.map((c, i) => c + ' '.repeat(widths[i]! - visibleLength(c))).join('  ').trimEnd();
  return [bold(line(headers)), ...rows.map(line)].join('\n');
}

export function stateColor(state: string): string {
  if (state === 'running' || state === 'ok' || state === 'up' || state === 'fresh') return green(state);
  if (state === 'errored' || state === 'dead' || state === 'down' || state === 'stale' || state === 'short' || state === 'excess') return red(state);
  if (state === 'stopped' || state === 'pending' || state === 'external') return dim(state);
  return yellow(state);
}

/** Parse durations like 90s, 15m, 2h, 1d (and bare seconds). */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration '${text}' (examples: 90s, 15m, 2h, 1d)`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's']!;
  return n * unit;
}
