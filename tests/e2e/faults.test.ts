import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IntegrityReport } from '../../src/lib/checks/integrity.js';
import type { StatusReport } from '../../src/lib/checks/status-types.js';
import { type Venue } from '../../src/lib/config/schema.js';
import { pageHistory } from '../../src/lib/exchanges/history-paging.js';
import { adapterFor, pollOptions, venueBaseUrls } from '../../src/lib/exchanges/registry.js';
import type { HistoryDataType } from '../../src/lib/exchanges/types.js';
import { tableFor } from '../../src/lib/store/tables.js';
import { createClickHouse } from '../../src/lib/store/client.js';
import { eventually, runCli } from '../helpers/cli.js';
import { pauseAndDrain, simPost, truth, type Truth } from '../helpers/ground-truth.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * The fault suite of "no silent holes": one platform with the simulator, and for each fault the
 * simulator's ground truth against hot. After the fault, with the simulator paused and the pipeline
 * drained: every trade id the simulator produced between the first and the last it sent is in hot
 * exactly once after one `mprism repair`; before it, `integrity` exits 1 and names every stream that
 * lost trades; after it, integrity exits 0 and every orderbook hole is listed as unrepairable.
 */
let infra: TestInfra;

interface Row {
  fault: string;
  missingBefore: number;
  missingAfter: number;
  duplicates: number;
  integrityBefore: string;
  recoverySeconds: number | null;
}
const table: Row[] = [];

async function status(): Promise<StatusReport> {
  const r = await runCli(['status', '--json'], infra.env);
  return JSON.parse(r.stdout) as StatusReport;
}

async function pidOf(name: string): Promise<number> {
  const p = (await status()).processes.find((x) => x.name === name);
  if (p?.pid === null || p?.pid === undefined) throw new Error(`${name} has no pid`);
  return p.pid;
}

/**
 * Polled types whose venue history holds every observation the polls saw (long/short ratios, DVOL
 * candles): for each stream, the simulator's history over the span hot covers, against hot.
 * Returns the streams with observations missing or stored twice.
 */
async function polledTruth(): Promise<string[]> {
  const server = infra.config.clickhouse.hot;
  const ch = createClickHouse(server);
  const bad: string[] = [];
  const streams: { venue: Venue; dataType: HistoryDataType; column: string }[] = [
    { venue: 'binance_derivatives', dataType: 'lsr_top_position', column: 'period' },
    { venue: 'binance_derivatives', dataType: 'lsr_all_account', column: 'period' },
    { venue: 'okx_derivatives', dataType: 'lsr_top_position', column: 'period' },
    { venue: 'okx_derivatives', dataType: 'lsr_all_account', column: 'period' },
    { venue: 'deribit_derivatives', dataType: 'volatility_index', column: 'resolution' },
  ];
  try {
    for (const s of streams) {
      const table = `${server.database}.${tableFor(s.dataType).table}`;
      const rs = await ch.query({ query: `SELECT instrument, ${s.column} AS k, event_time AS t, count() AS n FROM ${table} WHERE venue = '${s.venue}' GROUP BY instrument, k, t`, format: 'JSONEachRow' });
      const rows = await rs.json<{ instrument: string; k: string; t: string; n: string }>();
      const adapter = adapterFor(s.venue, infra.config.collector.venues[s.venue].symbols);
      const source = adapter.history[s.dataType];
      if (source === undefined) throw new Error(`${s.venue} has no ${s.dataType} history`);
      for (const instrument of new Set(rows.map((r) => r.instrument))) {
        const mine = rows.filter((r) => r.instrument === instrument);
        const times = mine.map((r) => Number(r.t));
        const query = { instrument, fromMs: Math.min(...times), toMs: Math.max(...times), fromId: null, toId: null };
        const expected = new Set<string>();
        const base = venueBaseUrls(infra.config, s.venue, true).rest;
        // The http_429 fault may still be answering for the venue: wait it out, as repair does.
        const get = async (req: { url: string }) => {
          for (let attempt = 0; ; attempt++) {
            const res = await fetch(req.url);
            const body = await res.text();
            if (res.ok) return { body, receiveTime: Date.now() };
            if (attempt >= 30) throw new Error(`${req.url}: HTTP ${res.status}: ${body}`);
            await new Promise((r) => setTimeout(r, 1000));
          }
        };
        for await (const page of pageHistory(source, base, query, { apiKey: null }, pollOptions(infra.config), get)) {
          for (const r of page) expected.add(`${'period' in r ? r.period : 'resolution' in r ? r.resolution : ''}|${r.eventTime}`);
        }
        const stored = new Map(mine.map((r) => [`${r.k}|${r.t}`, Number(r.n)]));
        const missing = [...expected].filter((k) => !stored.has(k));
        const twice = [...stored].filter(([, n]) => n > 1).map(([k]) => k);
        if (missing.length > 0 || twice.length > 0) bad.push(`${s.venue} ${s.dataType} ${instrument}: missing ${missing.slice(0, 5).join(', ')}; twice ${twice.slice(0, 5).join(', ')}`);
      }
    }
    return bad;
  } finally {
    await ch.close();
  }
}

async function integrity(): Promise<{ code: number; report: IntegrityReport }> {
  const r = await runCli(['integrity', '--since', '30m', '--json'], infra.env);
  return { code: r.code, report: JSON.parse(r.stdout) as IntegrityReport };
}

/** Seconds from `since` until health passes again; null when it did not within the limit (needs repair). */
async function recovery(since: number, limitMs: number): Promise<number | null> {
  const deadline = since + limitMs;
  while (Date.now() < deadline) {
    if ((await runCli(['health'], infra.env)).code === 0) return Math.round((Date.now() - since) / 100) / 10;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return null;
}

/**
 * One fault, end to end. `inject` breaks something; trades flow meanwhile. Then the pipeline is
 * drained with the simulator paused and held against the simulator before and after one repair.
 */
async function runFault(name: string, inject: () => Promise<void>, opts: { selfHeals: boolean; settleMs?: number }): Promise<void> {
  try {
    await faultOnce(name, inject, opts);
  } catch (err) {
    // The home goes with the test: keep the daemons' and servers' logs of a failure where asked.
    const keep = process.env.MPRISM_TEST_KEEP_LOGS;
    if (keep) cpSync(join(infra.home, 'logs'), join(keep, name.replace(/[^a-z0-9]+/gi, '-')), { recursive: true });
    throw err;
  }
}

async function faultOnce(name: string, inject: () => Promise<void>, opts: { selfHeals: boolean; settleMs?: number }): Promise<void> {
  await simPost(infra.config, '/control/resume');
  await new Promise((r) => setTimeout(r, 4000));
  const injectedAt = Date.now();
  await inject();
  const recoverySeconds = opts.selfHeals ? await recovery(injectedAt, 120_000) : null;
  if (opts.selfHeals) expect(recoverySeconds, `${name}: the platform did not recover by itself`).not.toBeNull();
  // Let the collector see data again after the fault, so the holes it closes are recorded.
  await new Promise((r) => setTimeout(r, opts.settleMs ?? 5000));

  const before = await pauseAndDrain(infra.config);
  const pre = await integrity();
  if (before.short.length > 0) {
    expect(pre.code, `${name}: integrity passed with trades missing in ${before.missingRanges.join('; ')}`).toBe(1);
    const open = pre.report.holes.filter((h) => h.state === 'open' && h.dataType === 'trade').map((h) => `${h.venue} ${h.instrument}`);
    const unexplained = pre.report.unrecordedGaps.map((g) => `${g.venue} ${g.instrument}`);
    const holes = JSON.stringify(pre.report.holes.map((h) => `${h.venue} ${h.instrument} ${h.dataType} ${h.state} ${h.firstMissingId}..${h.lastMissingId} ${h.cause}`));
    for (const stream of before.short) expect([name, stream, open.includes(stream) || unexplained.includes(stream)], `missing ${before.missingRanges.join('; ')}; holes ${holes}`).toEqual([name, stream, true]);
  }

  const repair = await runCli(['repair', '--json'], infra.env, 300_000);
  expect(repair.code, `${name}: repair: ${repair.stdout}${repair.stderr}`).toBe(0);
  const after = await truth(infra.config);
  const post = await eventually(`${name}: integrity ok after repair`, async () => {
    const r = await integrity();
    return r.code === 0 ? r : null;
  }, 30_000, 2000).catch(async (err: unknown) => {
    const r = await integrity();
    throw new Error(`${(err as Error).message}: ${JSON.stringify({ problems: r.report.problems, tables: r.report.tables.flatMap((t) => t.problems) })}`);
  });
  table.push({
    fault: name,
    missingBefore: before.expected - before.distinct,
    missingAfter: after.expected - after.distinct,
    duplicates: after.rows - after.distinct,
    integrityBefore: pre.code === 0 ? 'ok' : `exit 1: ${pre.report.holes.filter((h) => h.state === 'open').length} open holes`,
    recoverySeconds,
  });
  expect([name, after.short], after.missingRanges.join('; ')).toEqual([name, []]);
  expect([name, await polledTruth()]).toEqual([name, []]);
  expect([name, after.expected - after.distinct, after.rows - after.distinct]).toEqual([name, 0, 0]);
  expect(post.report.holes.filter((h) => h.state === 'open')).toEqual([]);
  for (const h of post.report.holes.filter((x) => x.dataType === 'orderbook')) expect([name, h.holeId, h.state]).toEqual([name, h.holeId, 'unrepairable']);
}

const killer = (name: string) => async () => {
  process.kill(await pidOf(name), 'SIGKILL');
};
const simFault = (body: Record<string, unknown>) => async () => {
  await simPost(infra.config, '/control/fault', body);
};

beforeAll(async () => {
  infra = await startTestInfra({
    servers: [],
    overrides: {
      simulator: { tradesPerSecond: 20 },
      collector: { venues: { binance_derivatives: { apiKey: 'simulated-key' } } },
      replication: { windowSeconds: 5, safetyLagSeconds: 2, pollIntervalMs: 1000 },
      storage: { flushIntervalMs: 500, ackWaitSeconds: 5 },
      // No scheduled tasks and no history init: each fault's repair is the one the test runs, over live data only.
      brain: { tasks: [], init: { enabled: false } },
      registry: { heartbeatIntervalMs: 1000, ttlSeconds: 5 },
      supervisor: { initialBackoffMs: 300, stableAfterMs: 5000, healthTimeoutMs: 30000 },
    },
  });
  const init = await runCli(['init'], infra.env, 180_000);
  expect(init.code, init.stderr + init.stdout).toBe(0);
  const start = await runCli(['start', '--simulate'], infra.env, 240_000);
  expect(start.code, start.stderr + start.stdout).toBe(0);
  await eventually('health ok after start', async () => (await runCli(['health'], infra.env)).code === 0, 120_000, 2000);
}, 600_000);

afterAll(async () => {
  if (table.length > 0) {
    const lines = ['fault | missing before repair | after repair | duplicates | integrity before repair | seconds to recover by itself', '---|---|---|---|---|---'];
    for (const r of table) lines.push(`${r.fault} | ${r.missingBefore} | ${r.missingAfter} | ${r.duplicates} | ${r.integrityBefore} | ${r.recoverySeconds ?? 'needs repair'}`);
    console.log(`\n${lines.join('\n')}\n`);
  }
  await runCli(['stop', '--timeout', '10'], infra.env).catch(() => undefined);
  await infra.stop();
}, 120_000);

describe.sequential('no silent holes: each fault, then one repair, against the simulator\'s ground truth', () => {
  it('kill -9 collector', () => runFault('kill -9 collector', killer('collector'), { selfHeals: true }), 400_000);
  it('kill -9 storage', () => runFault('kill -9 storage', killer('storage'), { selfHeals: true }), 400_000);
  it('kill -9 replication', () => runFault('kill -9 replication', killer('replication'), { selfHeals: true }), 400_000);
  it('kill -9 brain', () => runFault('kill -9 brain', killer('brain'), { selfHeals: true }), 400_000);
  it('kill -9 supervisor', () => runFault('kill -9 supervisor', killer('supervisor'), { selfHeals: false }), 400_000);
  it('kill -9 nats-server', () => runFault('kill -9 nats-server', killer('nats'), { selfHeals: true }), 400_000);
  it('kill -9 clickhouse-server hot', () => runFault('kill -9 clickhouse-server hot', killer('clickhouse-hot'), { selfHeals: true }), 400_000);
  it('kill -9 clickhouse-server cold', () => runFault('kill -9 clickhouse-server cold', killer('clickhouse-cold'), { selfHeals: true }), 400_000);
  it('kill -9 redis-server', () => runFault('kill -9 redis-server', killer('redis'), { selfHeals: true }), 400_000);
  it('kill -9 postgres', () => runFault('kill -9 postgres', killer('postgres'), { selfHeals: true }), 400_000);
  it('simulator disconnect', () => runFault('simulator disconnect', simFault({ kind: 'disconnect' }), { selfHeals: true }), 400_000);
  // The stall must be over before the simulator is paused: the trades it withheld are then behind the last sent.
  it('simulator stall (20 s, shorter than the watchdog)', () => runFault('simulator stall 20 s', simFault({ kind: 'stall', seconds: 20 }), { selfHeals: true, settleMs: 25_000 }), 400_000);
  it('simulator gap', () => runFault('simulator gap', simFault({ kind: 'gap' }), { selfHeals: true }), 400_000);
  it('simulator bad_checksum', () => runFault('simulator bad_checksum', simFault({ kind: 'bad_checksum' }), { selfHeals: true }), 400_000);
  it('simulator malformed', () => runFault('simulator malformed', simFault({ kind: 'malformed' }), { selfHeals: true }), 400_000);
  it('simulator http_429', () => runFault('simulator http_429', simFault({ kind: 'http_429', count: 20, retryAfterSeconds: 5 }), { selfHeals: true }), 400_000);
});
