import { describe, expect, it } from 'vitest';
import { render } from 'ink-testing-library';
import { App, Dashboard } from '../../src/lib/tui/dashboard.js';
import type { TuiSnapshot } from '../../src/lib/tui/data.js';
import { formatCount, formatDuration, formatRate } from '../../src/lib/tui/format.js';
import { renderPlain } from '../../src/lib/tui/plain.js';
import { dashboardView, initLine } from '../../src/lib/tui/view.js';
import { waitFor } from '../helpers/wait.js';

const snapshot: TuiSnapshot = {
  at: '2025-06-01T12:00:00.000Z',
  processes: [
    { name: 'storage', kind: 'daemon', state: 'running', pid: 4242, uptimeSeconds: 3725, restarts: 2, cpuPercent: 3, rssBytes: 52_428_800, port: 8085, detail: null, heartbeatAgeSeconds: 1.5 },
    { name: 'brain', kind: 'daemon', state: 'dead', pid: null, uptimeSeconds: null, restarts: 0, cpuPercent: null, rssBytes: null, port: 8088, detail: 'stale lock', heartbeatAgeSeconds: null },
  ],
  infra: [
    { name: 'clickhouse-hot', mode: 'local', address: 'http://127.0.0.1:8123', up: false, pid: null, version: null, error: 'ECONNREFUSED' },
    { name: 'redis', mode: 'external', address: 'redis://redis:6379', up: true, pid: null, version: '7.0.15', error: null },
  ],
  tables: [
    { table: 'trades', hotRows: 1_234_567, coldRows: 1_200_000, hotRate: 812.4, coldRate: 0, lagSeconds: 75 },
    { table: 'orderbooks', hotRows: 10, coldRows: null, hotRate: 2.5, coldRate: null, lagSeconds: null },
  ],
  alerts: {
    open: 2,
    items: [
      { severity: 'warning', source: 'integrity', message: 'integrity: 1 problem: trades: gap' },
      { severity: 'critical', source: 'disk:/h', message: 'filesystem of /h is 95.0% full', ackedAt: '2025-06-01T11:00:00.000Z' },
    ],
  },
  init: {
    enabled: true,
    pending: true,
    finishedAt: null,
    stages: [
      { stage: 'funding_rate', state: 'done', done: 10, total: 10, errors: 0 },
      { stage: 'open_interest', state: 'running', done: 4, total: 10, errors: 2 },
      { stage: 'lsr', state: 'pending', done: 0, total: 20, errors: 0 },
    ],
  },
  errors: ['clickhouse-hot: down (ECONNREFUSED)'],
};

describe('Dashboard', () => {
  it('renders processes, infra, table rates, lag, alerts and errors', () => {
    const { lastFrame, unmount } = render(<Dashboard view={dashboardView(snapshot)} footer="q quit" />);
    const frame = lastFrame() ?? '';
    unmount();
    expect(frame).toContain('mprism  2025-06-01 12:00:00Z');
    expect(frame).toMatch(/storage\s+running\s+4242\s+1h2m\s+2\s+50MiB/);
    expect(frame).toMatch(/brain\s+dead\s+-\s+-\s+0\s+-/);
    expect(frame).toMatch(/clickhouse-hot\s+down\s+local\s+-\s+http:\/\/127\.0\.0\.1:8123/);
    expect(frame).toMatch(/redis\s+up\s+external\s+7\.0\.15/);
    expect(frame).toMatch(/trades\s+1\.23M\s+812\/s\s+1\.20M\s+0\/s\s+1m15s/);
    expect(frame).toMatch(/orderbooks\s+10\s+2\.5\/s\s+-\s+-\s+-/);
    // Totals are unknown when one side of a table is unknown.
    expect(frame).toMatch(/total\s+1\.23M\s+815\/s\s+-\s+-/);
    expect(frame).toContain('alerts: 2 open');
    expect(frame).toContain('warning integrity: integrity: 1 problem: trades: gap');
    expect(frame).toContain('critical disk:/h (acked): filesystem of /h is 95.0% full');
    expect(frame).toContain('history init: funding_rate done · open_interest 4/10 · lsr pending · 2 errors');
    expect(frame).toContain('clickhouse-hot: down (ECONNREFUSED)');
    expect(frame).toContain('q quit');
  });

  it('says when the brain is unreachable', () => {
    const { lastFrame, unmount } = render(<Dashboard view={dashboardView({ ...snapshot, alerts: null, init: null, errors: [] })} />);
    expect(lastFrame()).toContain('alerts: unknown (brain unreachable)');
    expect(lastFrame()).not.toContain('history init');
    unmount();
  });

  it('says when history initialization is done, and nothing when it is off and never ran', () => {
    const done = { enabled: true, pending: false, finishedAt: '2025-06-01T10:00:00.123Z', stages: [{ stage: 'funding_rate', state: 'done', done: 5, total: 5, errors: 0 }, { stage: 'trade', state: 'partial', done: 3, total: 5, errors: 2 }] };
    expect(initLine(done)).toEqual({ text: 'history init: done 2025-06-01 10:00:00Z (trade left to the scheduled backfill) · 2 errors', tone: 'warn' });
    expect(initLine({ ...done, stages: [done.stages[0]!] })).toEqual({ text: 'history init: done 2025-06-01 10:00:00Z', tone: 'dim' });
    expect(initLine({ enabled: false, pending: false, finishedAt: null, stages: [{ stage: 'funding_rate', state: 'pending', done: 0, total: 5, errors: 0 }] })).toBeNull();
    expect(initLine(null)).toBeNull();
  });
});

describe('App', () => {
  it('shows a placeholder, then refreshes repeatedly with new data', async () => {
    let calls = 0;
    const refresh = async (): Promise<TuiSnapshot> => {
      calls += 1;
      return { ...snapshot, processes: [{ ...snapshot.processes[0]!, restarts: calls }] };
    };
    const { lastFrame, unmount } = render(<App refresh={refresh} intervalMs={30} />);
    expect(lastFrame()).toContain('gathering status');
    await waitFor(() => calls >= 3);
    await new Promise((r) => setTimeout(r, 20)); // let the last refresh render
    const frame = lastFrame() ?? '';
    unmount();
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(frame).toMatch(/storage\s+running\s+4242\s+1h2m\s+\d+/);
  });

  it('shows a failing refresh in the footer instead of crashing', async () => {
    const { lastFrame, unmount } = render(<App refresh={() => Promise.reject(new Error('disk on fire'))} intervalMs={1000} />);
    await waitFor(() => (lastFrame() ?? '').includes('refresh failed: disk on fire'));
    unmount();
  });

  it('quits on q and stops refreshing', async () => {
    let calls = 0;
    const { stdin, lastFrame } = render(
      <App
        refresh={async () => {
          calls += 1;
          return snapshot;
        }}
        intervalMs={40}
      />,
    );
    await waitFor(() => (lastFrame() ?? '').includes('alerts: 2 open'));
    stdin.write('q');
    await new Promise((r) => setTimeout(r, 20));
    const atExit = calls;
    await new Promise((r) => setTimeout(r, 200));
    expect(calls).toBe(atExit);
  });
});

describe('renderPlain', () => {
  it('prints the same data as plain aligned text', () => {
    const text = renderPlain(dashboardView(snapshot));
    expect(text).not.toMatch(/\x1b\[/);
    expect(text).toContain('alerts: 2 open\n  warning integrity: integrity: 1 problem: trades: gap\n  critical disk:/h (acked): filesystem of /h is 95.0% full');
    expect(text).toContain('\n\nhistory init: funding_rate done · open_interest 4/10 · lsr pending · 2 errors\n\n');
    expect(text).toContain('Processes\nNAME     STATE    PID   UPTIME  RESTARTS  RSS\nstorage  running  4242  1h2m    2         50MiB');
    expect(text).toMatch(/trades\s+1\.23M\s+812\/s\s+1\.20M\s+0\/s\s+1m15s/);
    expect(text).toContain('Errors\nclickhouse-hot: down (ECONNREFUSED)');
  });
});

describe('format', () => {
  it('keeps numbers short', () => {
    expect(formatCount(9999)).toBe('9999');
    expect(formatCount(12_345)).toBe('12.3k');
    expect(formatCount(4_560_000)).toBe('4.56M');
    expect(formatCount(1_200_000_000)).toBe('1.20G');
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(0.25)).toBe('0.3/s');
    expect(formatRate(26_000)).toBe('26.0k/s');
    expect(formatDuration(86_400 * 2 + 3600)).toBe('2d1h');
  });
});
