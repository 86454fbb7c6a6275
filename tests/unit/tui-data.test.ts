import type { InfraStatus } from '../../src/lib/infra/local-servers.js';
import { describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/lib/checks/status-types.js';
import {
  TuiDataStore,
  parseInitStatus,
  parseReplicationHealth,
  type AlertItem,
  type InitProgress,
  type ReplicationView,
  ratePerSecond,
  type Side,
  type TuiSources,
} from '../../src/lib/tui/data.js';
import type { InfraName } from '../../src/lib/paths.js';

class FakeSources implements TuiSources {
  clock = 1_000_000;
  counts: Record<Side, Map<string, number> | Error> = { hot: new Map(), cold: new Map() };
  repl: ReplicationView | Error = { lag: new Map(), lastError: null };
  alertList: AlertItem[] | Error = [];
  init: InitProgress | null | Error = null;
  down = new Set<InfraName>();
  statusReport: StatusReport | Error = {
    home: '/h',
    processes: [{ name: 'storage', kind: 'daemon', state: 'running', pid: 42, uptimeSeconds: 5, restarts: 0, cpuPercent: 1, rssBytes: 1, port: 8085, detail: null, heartbeatAgeSeconds: 0.5 }],
    brainLeader: null,
    leases: null,
  };

  private static settle<T>(v: T | Error): Promise<T> {
    return v instanceof Error ? Promise.reject(v) : Promise.resolve(v);
  }
  status = () => FakeSources.settle(this.statusReport);
  probe = async (name: InfraName): Promise<InfraStatus> => ({
    name,
    mode: 'local',
    address: `addr-${name}`,
    up: !this.down.has(name),
    pid: null,
    version: this.down.has(name) ? null : '1.0',
    error: this.down.has(name) ? 'connect ECONNREFUSED' : null,
  });
  rowCounts = (side: Side) => FakeSources.settle(this.counts[side]);
  replication = () => FakeSources.settle(this.repl);
  alerts = () => FakeSources.settle(this.alertList);
  initStatus = () => FakeSources.settle(this.init);
  now = () => this.clock;
}

describe('ratePerSecond', () => {
  it('divides the row delta by elapsed seconds', () => {
    expect(ratePerSecond(100, 350, 500)).toBe(500);
  });
  it('is unknown without a previous count or elapsed time, and never negative', () => {
    expect(ratePerSecond(null, 5, 1000)).toBeNull();
    expect(ratePerSecond(5, null, 1000)).toBeNull();
    expect(ratePerSecond(5, 10, 0)).toBeNull();
    expect(ratePerSecond(100, 40, 1000)).toBe(0);
  });
});

describe('parseReplicationHealth', () => {
  it('reads lag per table and the first line of the last error', () => {
    const body = {
      ok: false,
      lagSeconds: { trades: 75.5, orderbooks: null },
      lastError: { table: 'trades', message: 'Code: 81, DB::Exception: Database mprism_cold doesn\'t exist.\nstack', at: 'x' },
    };
    expect(parseReplicationHealth(body)).toEqual({
      lag: new Map([['trades', 75.5]]),
      lastError: "trades: Code: 81, DB::Exception: Database mprism_cold doesn't exist.",
    });
  });
  it('drops the last error once replication is healthy again', () => {
    const body = { ok: true, lagSeconds: {}, lastError: { table: 'trades', message: 'old failure', at: 'x' } };
    expect(parseReplicationHealth(body).lastError).toBeNull();
  });
  it('tolerates anything else', () => {
    expect(parseReplicationHealth(null)).toEqual({ lag: new Map(), lastError: null });
    expect(parseReplicationHealth({ ok: true, lagSeconds: [1, 2], lastError: 'x' })).toEqual({ lag: new Map(), lastError: null });
  });
});

describe('TuiDataStore', () => {
  it('turns successive counts into rates per table and side', async () => {
    const src = new FakeSources();
    src.counts = { hot: new Map([['trades', 1000]]), cold: new Map([['trades', 400]]) };
    const store = new TuiDataStore(src, ['trades', 'orderbooks']);
    const first = await store.refresh();
    expect(first.tables[0]).toEqual({ table: 'trades', hotRows: 1000, coldRows: 400, hotRate: null, coldRate: null, lagSeconds: null });
    src.clock += 2000;
    src.counts = { hot: new Map([['trades', 3000]]), cold: new Map([['trades', 400]]) };
    src.repl = { lag: new Map([['trades', 42]]), lastError: 'trades: Code: 81' };
    const second = await store.refresh();
    expect(second.tables).toEqual([
      { table: 'trades', hotRows: 3000, coldRows: 400, hotRate: 1000, coldRate: 0, lagSeconds: 42 },
      // A table absent from the server counts as empty, not unknown.
      { table: 'orderbooks', hotRows: 0, coldRows: 0, hotRate: 0, coldRate: 0, lagSeconds: null },
    ]);
    expect(second.errors).toEqual(['replication: last error: trades: Code: 81']);
    expect(second.alerts).toEqual({ open: 0, items: [] });
    expect(second.processes[0]?.name).toBe('storage');
  });

  it('reports failing sources as error lines and keeps going', async () => {
    const src = new FakeSources();
    src.counts.hot = new Error('connect ECONNREFUSED 127.0.0.1:8123');
    src.repl = new Error('unreachable at 127.0.0.1:8086 (ECONNREFUSED)');
    src.alertList = new Error('unreachable at 127.0.0.1:8088 (ECONNREFUSED)');
    src.statusReport = new Error('boom');
    src.init = new Error('HTTP 500 from /api/v1/system/init/status');
    src.down.add('clickhouse-hot');
    const snap = await new TuiDataStore(src, ['trades']).refresh();
    expect(snap.errors).toEqual([
      'status: boom',
      'clickhouse-hot: connect ECONNREFUSED 127.0.0.1:8123',
      'replication: unreachable at 127.0.0.1:8086 (ECONNREFUSED)',
      'brain: unreachable at 127.0.0.1:8088 (ECONNREFUSED)',
      'brain init: HTTP 500 from /api/v1/system/init/status',
      'clickhouse-hot: down (connect ECONNREFUSED)',
    ]);
    expect(snap.init).toBeNull();
    expect(snap.tables[0]).toMatchObject({ hotRows: null, coldRows: 0, hotRate: null });
    expect(snap.alerts).toBeNull();
    expect(snap.processes).toEqual([]);
    expect(snap.infra).toHaveLength(5);
  });

  it('summarizes open alerts from the brain, acknowledged or not, and an older brain without acks', async () => {
    const src = new FakeSources();
    src.alertList = [
      { id: 1, severity: 'critical', source: 'stream-stale:binance_spot.trade.BTCUSDT', message: 'no data for 400 s', ackedAt: '2025-06-01T12:00:00.000Z' },
      { id: 2, severity: 'warning', source: 'integrity', message: 'integrity failed: x' },
    ];
    const snap = await new TuiDataStore(src, []).refresh();
    expect(snap.alerts).toEqual({
      open: 2,
      items: [
        { id: 1, severity: 'critical', source: 'stream-stale:binance_spot.trade.BTCUSDT', message: 'no data for 400 s', ackedAt: '2025-06-01T12:00:00.000Z' },
        { id: 2, severity: 'warning', source: 'integrity', message: 'integrity failed: x', ackedAt: null },
      ],
    });
  });

  it('passes the init progress on, and nothing when the brain has none', async () => {
    const src = new FakeSources();
    expect((await new TuiDataStore(src, []).refresh()).init).toBeNull();
    src.init = { enabled: true, pending: true, finishedAt: null, stages: [{ stage: 'funding_rate', state: 'running', done: 3, total: 10, errors: 0 }] };
    expect((await new TuiDataStore(src, []).refresh()).init).toEqual(src.init);
  });
});

describe('parseInitStatus', () => {
  it('reads stages with done (and skipped) over total items and their errors', () => {
    const body = {
      enabled: true,
      pending: true,
      finishedAt: null,
      stages: [
        { stage: 'funding_rate', state: 'done', items: { done: 9, left: 0, skipped: 1, total: 10 }, records: 500, errors: [], lastError: null, updatedAt: 'x' },
        { stage: 'open_interest', state: 'running', items: { done: 4, left: 0, skipped: 0, total: 10 }, records: 20, errors: [{ item: 'a', error: 'HTTP 429' }], lastError: null, updatedAt: 'x' },
      ],
    };
    expect(parseInitStatus(body)).toEqual({
      enabled: true,
      pending: true,
      finishedAt: null,
      stages: [
        { stage: 'funding_rate', state: 'done', done: 10, total: 10, errors: 0 },
        { stage: 'open_interest', state: 'running', done: 4, total: 10, errors: 1 },
      ],
    });
  });
  it('tolerates anything else', () => {
    expect(parseInitStatus(null)).toBeNull();
    expect(parseInitStatus({ stages: 'x' })).toBeNull();
    expect(parseInitStatus({ stages: [{ items: null }] })).toEqual({ enabled: true, pending: false, finishedAt: null, stages: [{ stage: '?', state: '?', done: 0, total: 0, errors: 0 }] });
  });
});
