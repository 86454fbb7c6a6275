import type { InitProgress, TuiSnapshot } from './data.js';
import { formatBytes, formatCount, formatDuration, formatRate } from './format.js';

/** How a cell should stand out; renderers map tones to colors (or ignore them in plain text). */
export type Tone = 'good' | 'bad' | 'warn' | 'dim' | 'plain';

export interface Cell {
  text: string;
  tone: Tone;
}

export interface TableView {
  title: string;
  headers: string[];
  rows: Cell[][];
}

/** The dashboard as text cells: one model for the Ink UI and the plain snapshot, so both show the same. */
export interface DashboardView {
  title: string;
  sections: TableView[];
  alerts: { headline: Cell; lines: Cell[] };
  /** The history initialization in one line; null when the brain reports none. */
  init: Cell | null;
  errors: string[];
}

/** Width of each column: its widest header or cell. */
export function columnWidths(view: TableView): number[] {
  return view.headers.map((h, i) => Math.max(h.length, ...view.rows.map((r) => r[i]?.text.length ?? 0)));
}

const cell = (text: string, tone: Tone = 'plain'): Cell => ({ text, tone });

export function stateTone(state: string): Tone {
  if (state === 'running' || state === 'up') return 'good';
  if (state === 'errored' || state === 'dead' || state === 'down') return 'bad';
  if (state === 'stopped' || state === 'external') return 'dim';
  return 'warn';
}

/** Replication lag above this many seconds is highlighted (windows are normally a minute or two). */
const LAG_WARN_SECONDS = 300;

/**
 * `history init: funding_rate done · open_interest 12/40 · lsr pending`, with the errors counted;
 * nothing when initialization is off and never ran.
 */
export function initLine(init: InitProgress | null): Cell | null {
  if (init === null) return null;
  const started = init.stages.some((st) => st.state !== 'pending');
  if (!init.enabled && !started && init.finishedAt === null) return null;
  const errors = init.stages.reduce((n, st) => n + st.errors, 0);
  const errorText = errors > 0 ? ` · ${errors} error${errors === 1 ? '' : 's'}` : '';
  const settled = init.stages.every((st) => st.state === 'done' || st.state === 'partial');
  if (init.finishedAt !== null && settled) {
    const partial = init.stages.filter((st) => st.state === 'partial').map((st) => st.stage);
    const left = partial.length > 0 ? ` (${partial.join(', ')} left to the scheduled backfill)` : '';
    return cell(`history init: done ${init.finishedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}${left}${errorText}`, partial.length > 0 || errors > 0 ? 'warn' : 'dim');
  }
  const stages = init.stages.map((st) => (st.state === 'running' ? `${st.stage} ${st.done}/${st.total}` : `${st.stage} ${st.state}`));
  return cell(`history init: ${stages.join(' · ')}${errorText}`, errors > 0 ? 'warn' : 'plain');
}

export function dashboardView(s: TuiSnapshot): DashboardView {
  const processes: TableView = {
    title: 'Processes',
    headers: ['NAME', 'STATE', 'PID', 'UPTIME', 'RESTARTS', 'RSS'],
    rows: s.processes.map((p) => [
      cell(p.name),
      cell(p.state, stateTone(p.state)),
      cell(p.pid === null ? '-' : String(p.pid)),
      cell(formatDuration(p.uptimeSeconds)),
      cell(String(p.restarts), p.restarts > 0 ? 'warn' : 'plain'),
      cell(formatBytes(p.rssBytes)),
    ]),
  };

  const infra: TableView = {
    title: 'Infrastructure',
    headers: ['NAME', 'HEALTH', 'MODE', 'VERSION', 'ADDRESS'],
    rows: s.infra.map((i) => [
      cell(i.name),
      cell(i.up ? 'up' : 'down', i.up ? 'good' : 'bad'),
      cell(i.mode, 'dim'),
      cell(i.version ?? '-'),
      cell(i.address, 'dim'),
    ]),
  };

  const sum = (values: (number | null)[]) =>
    values.some((v) => v === null) ? null : values.reduce<number>((a, v) => a + (v ?? 0), 0);
  const lagCell = (lag: number | null) =>
    cell(lag === null ? '-' : formatDuration(lag), lag !== null && lag > LAG_WARN_SECONDS ? 'warn' : 'plain');
  const tables: TableView = {
    title: 'Tables',
    headers: ['TABLE', 'HOT ROWS', 'HOT/S', 'COLD ROWS', 'COLD/S', 'REPL LAG'],
    rows: [
      ...s.tables.map((t) => [
        cell(t.table),
        cell(formatCount(t.hotRows)),
        cell(formatRate(t.hotRate), t.hotRate !== null && t.hotRate > 0 ? 'good' : 'plain'),
        cell(formatCount(t.coldRows)),
        cell(formatRate(t.coldRate), t.coldRate !== null && t.coldRate > 0 ? 'good' : 'plain'),
        lagCell(t.lagSeconds),
      ]),
      [
        cell('total', 'dim'),
        cell(formatCount(sum(s.tables.map((t) => t.hotRows))), 'dim'),
        cell(formatRate(sum(s.tables.map((t) => t.hotRate))), 'dim'),
        cell(formatCount(sum(s.tables.map((t) => t.coldRows))), 'dim'),
        cell(formatRate(sum(s.tables.map((t) => t.coldRate))), 'dim'),
        cell('', 'dim'),
      ],
    ],
  };

  const alerts =
    s.alerts === null
      ? { headline: cell('alerts: unknown (brain unreachable)', 'dim'), lines: [] }
      : {
          headline: cell(
            `alerts: ${s.alerts.open} open`,
            s.alerts.open === 0 ? 'good' : s.alerts.items.some((a) => a.severity === 'critical') ? 'bad' : 'warn',
          ),
          // An acknowledged alert is someone's already: shown, but no longer shouting.
          lines: s.alerts.items.map((a) =>
            a.ackedAt
              ? cell(`${a.severity} ${a.source} (acked): ${a.message}`, 'dim')
              : cell(`${a.severity} ${a.source}: ${a.message}`, a.severity === 'critical' ? 'bad' : 'warn'),
          ),
        };

  return {
    title: `mprism  ${s.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}`,
    sections: [processes, infra, tables],
    alerts,
    init: initLine(s.init),
    errors: s.errors,
  };
}
