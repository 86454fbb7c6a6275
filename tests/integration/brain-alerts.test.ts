import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { connect, type NatsConnection, type Subscription } from 'nats';
import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collector } from '../../src/daemons/collector/run.js';
import { simulator } from '../../src/daemons/simulator/run.js';
import type { ActionContext, BrainDeps, JobOutcome } from '../../src/lib/brain/actions.js';
import { ackAlert, fetchAlerts } from '../../src/lib/brain/alerts/client.js';
import type { AlertEventBody } from '../../src/lib/brain/alerts/delivery.js';
import { createAlerting, type Alerting, type HealthRunResult } from '../../src/lib/brain/alerts/index.js';
import { AlertStore, type AlertView } from '../../src/lib/brain/alerts/store.js';
import { startBrainApi, type BrainApiServer } from '../../src/lib/brain/api.js';
import { prepareBrainSchema } from '../../src/lib/brain/schema.js';
import { ensureBrainToken } from '../../src/lib/brain/token.js';
import { ensureStreams } from '../../src/lib/bus/streams.js';
import type { Config } from '../../src/lib/config/schema.js';
import { UnreachableError, UsageError } from '../../src/lib/errors.js';
import { natsUrl, postgresUrl, redisUrl } from '../../src/lib/infra/endpoints.js';
import { createClickHouse, detectDialect } from '../../src/lib/store/client.js';
import { holeStateRecord, recordHoleStates, type Hole } from '../../src/lib/store/holes.js';
import { ensureSchema } from '../../src/lib/store/tables.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { runDaemon, stopDaemon, type RunningDaemon } from '../helpers/daemons.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';
import { waitFor } from '../helpers/wait.js';

/** A webhook receiver: records every POST; answers with the statuses queued in `script`, then 200. */
class Receiver {
  readonly events: AlertEventBody[] = [];
  /** Status per request, consumed in order; empty: 200. */
  script: number[] = [];
  /** Answer every request with this status while set. */
  always: number | null = null;
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString('utf8')));
      req.on('end', () => {
        this.events.push(JSON.parse(text) as AlertEventBody);
        const status = this.always ?? this.script.shift() ?? 200;
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'no');
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  of(alertId: number): AlertEventBody[] {
    return this.events.filter((e) => e.alert.id === alertId);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const SILENT = pino({ level: process.env.MPRISM_TEST_LOG ?? 'silent' }, pino.destination(2));
const FAST_RETRY = { initialMs: 300, maxMs: 1200 };

let infra: TestInfra;
let config: Config;
let pool: pg.Pool;
let redis: Redis;
let nc: NatsConnection;
let natsEvents: { subject: string; body: AlertEventBody }[];
let sub: Subscription;
const receiver = new Receiver();

function deps(registry = new Registry()): BrainDeps {
  return { config, pool, redis, log: SILENT, metrics: registry };
}

/** One run of the health action, as the brain's scheduler would make it. */
async function evaluate(alerting: Alerting): Promise<HealthRunResult> {
  const ctx: ActionContext = {
    config,
    params: {},
    trigger: 'manual',
    signal: new AbortController().signal,
    log: SILENT,
    progress: { load: async () => null, save: async () => undefined, clear: async () => undefined, list: async () => [] },
  };
  const outcome: JobOutcome = await alerting.healthAction(ctx);
  return outcome.result as HealthRunResult;
}

async function deliveries(alertId: number) {
  return (await new AlertStore(pool).deliveries(alertId)).map((d) => ({ event: d.event, channel: d.channel, attempt: d.attempt, ok: d.ok, status: d.status }));
}

beforeAll(async () => {
  await receiver.start();
  infra = await startTestInfra({
    servers: ['nats', 'postgres', 'clickhouse-hot'],
    overrides: {
      simulator: { tradesPerSecond: 50, symbols: ['BTCUSDT', 'ETHUSDT'] },
      collector: {
        // Longer than the stall below: the connection stays, only the data stops.
        staleAfterSeconds: 60,
        startupGraceSeconds: 5,
        reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
        venues: {
          binance_spot: { dataTypes: ['trade'] },
          binance_derivatives: { enabled: false },
          okx_spot: { enabled: false },
          okx_derivatives: { enabled: false },
          deribit_derivatives: { enabled: false },
        },
      },
      brain: {
        alerts: {
          webhookUrl: `http://127.0.0.1:${receiver.port}/hook`,
          webhookTimeoutMs: 2000,
          webhookMaxAttempts: 5,
          natsSubject: 'test.alerts',
          rules: [
            { name: 'stream-stale', kind: 'stream_stale', severity: 'critical', threshold: 2 },
            // Quiet until a test lowers its threshold through the API.
            { name: 'disk', kind: 'disk_usage', severity: 'warning', threshold: 100 },
          ],
        },
      },
    },
  });
  config = infra.config;
  pool = new pg.Pool({ connectionString: postgresUrl(config) });
  await prepareBrainSchema(pool, config);
  redis = new Redis(redisUrl(config), { lazyConnect: true });
  nc = await connect({ servers: natsUrl(config) });
  natsEvents = [];
  sub = nc.subscribe('test.alerts.>');
  void (async () => {
    for await (const m of sub) natsEvents.push({ subject: m.subject, body: m.json<AlertEventBody>() });
  })();
  await ensureStreams(await nc.jetstreamManager(), config);
});

afterAll(async () => {
  sub?.unsubscribe();
  await nc?.close();
  redis?.disconnect();
  await pool?.end();
  await receiver.close();
  await infra?.stop();
});

describe('alerts that reach someone', () => {
  it('a stream that stops reaches the webhook and NATS as opened, and as resolved when it resumes', async () => {
    const http = `http://127.0.0.1:${config.simulator.port}`;
    const sim = runDaemon(simulator, config);
    await waitFor(async () => (await fetch(`${http}/health`).catch(() => null))?.ok === true);
    const col: RunningDaemon = runDaemon(collector, config);
    // The collector's /health over HTTP, as the daemon runner serves it.
    const colHttp = createServer((_req, res) => {
      void col.health().then((h) => res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h)));
    });
    await new Promise<void>((resolve) => colHttp.listen(config.collector.port, '127.0.0.1', () => resolve()));
    const alerting = createAlerting(deps(), { retry: FAST_RETRY });
    try {
      const fresh = async () => {
        const h = (await col.health()) as { streams?: { instruments: { status: string }[] }[] };
        return h.streams?.[0]?.instruments.every((i) => i.status === 'fresh') === true;
      };
      await waitFor(fresh, 20_000, 100, 'both instruments fresh');
      // A healthy platform: nothing fires.
      expect(await evaluate(alerting)).toMatchObject({ rules: 2, opened: [], resolved: [], open: 0, unknown: {} });

      const stall = await fetch(`${http}/control/fault`, { method: 'POST', body: JSON.stringify({ kind: 'stall', venue: 'binance_spot', seconds: 8 }) });
      expect(stall.ok).toBe(true);
      const sources = ['stream-stale:binance_spot.trade.BTCUSDT', 'stream-stale:binance_spot.trade.ETHUSDT'];
      const opened = new Set<string>();
      await waitFor(
        async () => {
          for (const s of (await evaluate(alerting)).opened) opened.add(s);
          return sources.every((s) => opened.has(s));
        },
        15_000,
        300,
        'both instruments alerted',
      );
      const open = await new AlertStore(pool).alerts({ state: 'open', limit: 10 });
      expect(open.map((a) => a.source).sort()).toEqual(sources);
      const btc = open.find((a) => a.subject === 'binance_spot.trade.BTCUSDT')!;
      expect(btc).toMatchObject({ rule: 'stream-stale', severity: 'critical', resolvedAt: null, ackedAt: null });
      expect(btc.message).toMatch(/^binance_spot trade BTCUSDT: no data for \d+ s \(limit 2 s\)$/);

      // The stall ends by itself; the alerts resolve by themselves.
      const resolved = new Set<string>();
      await waitFor(
        async () => {
          for (const s of (await evaluate(alerting)).resolved) resolved.add(s);
          return sources.every((s) => resolved.has(s));
        },
        20_000,
        300,
        'both alerts resolved',
      );
      for (const alert of open) {
        await waitFor(async () => receiver.of(alert.id).length === 2 && natsEvents.filter((e) => e.body.alert.id === alert.id).length === 2, 10_000, 50, `deliveries of ${alert.source}`);
        const hooks = receiver.of(alert.id);
        expect(hooks.map((e) => e.event)).toEqual(['opened', 'resolved']);
        expect(hooks[0]!.alert).toMatchObject({ id: alert.id, rule: 'stream-stale', subject: alert.subject, severity: 'critical', openedAt: alert.createdAt, resolvedAt: null, ackedAt: null });
        expect(hooks[1]!.alert.resolvedAt).not.toBeNull();
        expect(typeof hooks[0]!.platform.host).toBe('string');
        const onNats = natsEvents.filter((e) => e.body.alert.id === alert.id);
        expect(onNats.map((e) => [e.subject, e.body.event])).toEqual([
          ['test.alerts.opened', 'opened'],
          ['test.alerts.resolved', 'resolved'],
        ]);
        const byEventAndChannel = (d: { event: string; channel: string }) => `${d.event} ${d.channel}`;
        expect((await deliveries(alert.id)).sort((a, b) => byEventAndChannel(a).localeCompare(byEventAndChannel(b)))).toEqual([
          { event: 'opened', channel: 'nats', attempt: 1, ok: true, status: null },
          { event: 'opened', channel: 'webhook', attempt: 1, ok: true, status: 200 },
          { event: 'resolved', channel: 'nats', attempt: 1, ok: true, status: null },
          { event: 'resolved', channel: 'webhook', attempt: 1, ok: true, status: 200 },
        ]);
      }
      // While the collector runs and its streams flow, nothing is open any more.
      expect((await evaluate(alerting)).open).toBe(0);

      // A collector that does not answer is unknown, not clear: an open alert stays open.
      await fetch(`${http}/control/fault`, { method: 'POST', body: JSON.stringify({ kind: 'stall', venue: 'binance_spot', seconds: 30 }) });
      await waitFor(async () => (await evaluate(alerting)).opened.length > 0, 15_000, 300, 'a stale alert during the second stall');
      await new Promise<void>((resolve) => colHttp.close(() => resolve()));
      colHttp.closeAllConnections();
      const blind = await evaluate(alerting);
      expect(blind.resolved).toEqual([]);
      expect(blind.open).toBeGreaterThan(0);
      expect(blind.unknown['stream-stale']).toMatch(/^collector \/health not answering/);
    } finally {
      await alerting.close();
      colHttp.close();
      await stopDaemon(col);
      await stopDaemon(sim);
    }
  }, 120_000);

  describe('through the API', () => {
    let api: BrainApiServer;
    let token: string;
    let alerting: Alerting;
    const registry = new Registry();
    const base = () => `http://127.0.0.1:${api.port}`;
    const post = (path: string, body: unknown, auth = true) =>
      fetch(`${base()}${path}`, { method: 'POST', headers: auth ? { authorization: `Bearer ${token}` } : {}, body: JSON.stringify(body) });
    const setDiskThreshold = async (threshold: number) => expect((await post('/api/v1/monitoring/rules', { name: 'disk', threshold })).status).toBe(200);
    const diskAlert = async (): Promise<AlertView> => {
      const open = await new AlertStore(pool).alerts({ state: 'open', limit: 50 });
      return open.find((a) => a.rule === 'disk')!;
    };

    beforeAll(async () => {
      token = ensureBrainToken(config.home);
      alerting = createAlerting(deps(registry), { retry: { initialMs: 600, maxMs: 2400 } });
      api = await startBrainApi('127.0.0.1', config.brain.port, () => alerting.routes, token);
      // The stream test's leftovers: the collector is gone, so stream-stale is off here.
      expect((await post('/api/v1/monitoring/rules', { name: 'stream-stale', enabled: false })).status).toBe(200);
      await evaluate(alerting);
    });

    afterAll(async () => {
      await alerting?.close();
      await api?.close();
    });

    it('lists and upserts rules, naming a bad field, and only with the token', async () => {
      const rules = (await (await fetch(`${base()}/api/v1/monitoring/rules`)).json()) as { rules: { name: string }[] };
      expect(rules.rules.map((r) => r.name)).toEqual(['disk', 'stream-stale']);
      expect((await post('/api/v1/monitoring/rules', { name: 'disk', threshold: 0 }, false)).status).toBe(401);
      const bad = await post('/api/v1/monitoring/rules', { name: 'disk', threshold: 150 });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ field: 'threshold' });
      expect(await (await post('/api/v1/monitoring/rules', { name: 'lag', kind: 'replication_lags', severity: 'warning' })).json()).toMatchObject({ field: 'kind' });
      expect(await (await post('/api/v1/monitoring/rules', { name: 'lag', kind: 'replication_lag', severity: 'warning', colour: 'red' })).json()).toMatchObject({ field: 'colour' });
      const created = await post('/api/v1/monitoring/rules', { name: 'lag', kind: 'replication_lag', severity: 'warning', enabled: false });
      expect(created.status).toBe(201);
      expect(await created.json()).toMatchObject({ created: true, rule: { name: 'lag', kind: 'replication_lag', severity: 'warning', enabled: false, threshold: null } });
      // A restart seeds again: a rule the API changed is left as it is.
      await setDiskThreshold(99.5);
      const again = createAlerting(deps());
      await evaluate(again);
      await again.close();
      expect((await new AlertStore(pool).rule('disk'))?.threshold).toBe(99.5);
    });

    it('an acknowledged alert is recorded, stays open while firing, and is not delivered again', async () => {
      receiver.always = 500;
      await setDiskThreshold(0);
      const run = await evaluate(alerting);
      expect(run.opened).toEqual([`disk:${config.home}`]);
      const alert = await diskAlert();
      await waitFor(async () => (await deliveries(alert.id)).some((d) => d.channel === 'webhook' && !d.ok), 10_000, 20, 'a failed webhook attempt');

      const acked = await post('/api/v1/monitoring/alerts/ack', { id: alert.id, by: 'alice' });
      expect(acked.status).toBe(200);
      const first = ((await acked.json()) as { alert: AlertView }).alert;
      expect(first).toMatchObject({ id: alert.id, ackedBy: 'alice', resolvedAt: null });
      expect(first.ackedAt).not.toBeNull();
      // Idempotent: the first ack stands.
      const second = ((await (await post('/api/v1/monitoring/alerts/ack', { id: String(alert.id), by: 'bob' })).json()) as { alert: AlertView }).alert;
      expect([second.ackedAt, second.ackedBy]).toEqual([first.ackedAt, 'alice']);
      expect(await (await post('/api/v1/monitoring/alerts/ack', { id: 'x' })).json()).toMatchObject({ field: 'id' });
      expect(await (await post('/api/v1/monitoring/alerts/ack', { id: alert.id, colour: 'red' })).json()).toMatchObject({ field: 'colour' });
      expect((await post('/api/v1/monitoring/alerts/ack', { id: 999_999 })).status).toBe(404);
      expect((await post('/api/v1/monitoring/alerts/ack', { id: alert.id }, false)).status).toBe(401);

      // Five attempts would take 0.6 + 1.2 + 2.4 + 2.4 s: the ack stopped them.
      await new Promise((r) => setTimeout(r, 7000));
      const attempts = (await deliveries(alert.id)).filter((d) => d.channel === 'webhook');
      expect(attempts.length).toBeLessThanOrEqual(2);
      expect(attempts.every((d) => d.event === 'opened' && !d.ok && d.status === 500)).toBe(true);

      // Still firing: still open, still acknowledged; listed as such.
      expect((await evaluate(alerting)).resolved).toEqual([]);
      const listed = (await (await fetch(`${base()}/api/v1/monitoring/alerts`)).json()) as { alerts: AlertView[] };
      expect(listed.alerts.find((a) => a.id === alert.id)).toMatchObject({ ackedBy: 'alice', resolvedAt: null });
      const legacy = (await (await fetch(`${base()}/api/v1/alerts`)).json()) as { alerts: AlertView[] };
      expect(legacy.alerts.map((a) => a.id)).toContain(alert.id);

      // A restarted brain does not deliver it again either; its resolution is delivered.
      receiver.always = null;
      await alerting.close();
      alerting = createAlerting(deps(registry), { retry: FAST_RETRY });
      const hooksBefore = receiver.of(alert.id).length;
      await evaluate(alerting);
      await setDiskThreshold(100);
      expect((await evaluate(alerting)).resolved).toEqual([`disk:${config.home}`]);
      await waitFor(async () => receiver.of(alert.id).some((e) => e.event === 'resolved'), 10_000, 20, 'the resolution delivered');
      expect(receiver.of(alert.id).slice(hooksBefore).map((e) => e.event)).toEqual(['resolved']);
      expect(receiver.of(alert.id).at(-1)!.alert).toMatchObject({ ackedBy: 'alice' });
      const all = (await (await fetch(`${base()}/api/v1/monitoring/alerts?state=all&limit=5`)).json()) as { alerts: AlertView[] };
      expect(all.alerts.find((a) => a.id === alert.id)?.resolvedAt).not.toBeNull();
      expect(await (await fetch(`${base()}/api/v1/monitoring/alerts?state=closed`)).json()).toMatchObject({ field: 'state' });
    }, 60_000);

    it('a receiver answering 500 twice, then 200, gets three attempts, all recorded', async () => {
      receiver.script = [500, 500];
      await setDiskThreshold(0);
      await evaluate(alerting);
      const alert = await diskAlert();
      await waitFor(async () => (await deliveries(alert.id)).some((d) => d.channel === 'webhook' && d.ok), 15_000, 50, 'a delivered webhook');
      expect((await deliveries(alert.id)).filter((d) => d.channel === 'webhook')).toEqual([
        { event: 'opened', channel: 'webhook', attempt: 1, ok: false, status: 500 },
        { event: 'opened', channel: 'webhook', attempt: 2, ok: false, status: 500 },
        { event: 'opened', channel: 'webhook', attempt: 3, ok: true, status: 200 },
      ]);
      expect(receiver.of(alert.id).map((e) => e.event)).toEqual(['opened', 'opened', 'opened']);
      await waitFor(() => natsEvents.some((e) => e.body.alert.id === alert.id), 5000, 20, 'the NATS event');
      const counted = await registry.getSingleMetricAsString('mprism_brain_alert_deliveries_total');
      expect(counted).toMatch(/channel="webhook",result="failed"} [2-9]/);
      expect(counted).toMatch(/channel="webhook",result="ok"} [1-9]/);
      expect(await registry.getSingleMetricAsString('mprism_brain_alerts_open')).toContain('rule="disk",severity="warning"} 1');
      await setDiskThreshold(100);
      await evaluate(alerting);
    }, 30_000);

    it('a restarted brain retries the events the previous one left undelivered', async () => {
      receiver.always = 500;
      await setDiskThreshold(0);
      await evaluate(alerting);
      const alert = await diskAlert();
      await waitFor(async () => (await deliveries(alert.id)).some((d) => d.channel === 'webhook'), 10_000, 20, 'a first attempt');
      await alerting.close();
      receiver.always = null;
      alerting = createAlerting(deps(registry), { retry: FAST_RETRY });
      await evaluate(alerting);
      await waitFor(async () => (await deliveries(alert.id)).some((d) => d.channel === 'webhook' && d.ok), 10_000, 50, 'delivery after the restart');
      const hooks = (await deliveries(alert.id)).filter((d) => d.channel === 'webhook');
      expect(hooks.at(-1)).toEqual({ event: 'opened', channel: 'webhook', attempt: hooks.length, ok: true, status: 200 });
      expect(hooks.slice(0, -1).every((d) => !d.ok && d.status === 500)).toBe(true);
      await setDiskThreshold(100);
      await evaluate(alerting);
    }, 30_000);

    it('infra down, failing jobs and integrity problems open alerts; a disabled rule resolves its own', async () => {
      const rule = async (body: Record<string, unknown>) => expect((await post('/api/v1/monitoring/rules', body)).status).toBeLessThan(300);
      await rule({ name: 'infra-down', kind: 'infra_down', severity: 'critical' });
      await rule({ name: 'job-failing', kind: 'job_failing', severity: 'warning', threshold: 2 });
      await rule({ name: 'integrity', kind: 'integrity_problems', severity: 'warning' });
      // Runs as the scheduler records them: two failures in a row of `repair`, one of `backfill`, and
      // an integrity run whose only problems besides an open hole (hole-unrepaired's) is a short window.
      const taskId = async (name: string, action = name): Promise<number> =>
        Number(
          (
            await pool.query<{ id: string }>(
              `INSERT INTO tasks (name, cron, action) VALUES ($1, '0 * * * *', $2) ON CONFLICT (name) DO UPDATE SET enabled = true RETURNING id`,
              [name, action],
            )
          ).rows[0]!.id,
        );
      const runs = async (values: [string, boolean, string | null, unknown][]) => {
        for (const [task, ok, error, result] of values) {
          const action = task.replace(/^nightly-/, '');
          await pool.query(
            `INSERT INTO job_runs (job, task_id, task_name, started_at, finished_at, ok, error, result) VALUES ($1, $2, $3, now(), clock_timestamp(), $4, $5, $6::jsonb)`,
            [action, await taskId(task, action), task, ok, error, JSON.stringify(result)],
          );
        }
      };
      const report = { ok: false, tables: [{ table: 'trades', problems: ['w short: hot 2, cold 1'] }], problems: ["hole: trade x: open, run 'mprism repair'"] };
      await runs([['repair', false, 'ClickHouse down', null], ['repair', false, 'ClickHouse down again', null], ['backfill', false, 'HTTP 429', null], ['integrity', false, null, report]]);

      const run = await evaluate(alerting);
      expect(run.opened.sort()).toEqual(['infra-down:clickhouse-cold', 'infra-down:redis', 'integrity:integrity', 'job-failing:repair']);
      const open = await new AlertStore(pool).alerts({ state: 'open', limit: 50 });
      expect(open.find((a) => a.source === 'job-failing:repair')?.message).toBe('task repair: the last 2 runs failed, latest: ClickHouse down again');
      expect(open.find((a) => a.source === 'integrity:integrity')?.message).toMatch(/^integrity run \d+: 1 problem: trades: w short: hot 2, cold 1$/);

      // A clean run clears each; the disabled rule's alerts resolve though the servers are still down.
      await runs([['repair', true, null, {}], ['integrity', true, null, { ok: true, tables: [], problems: [] }]]);
      await rule({ name: 'infra-down', enabled: false });
      expect((await evaluate(alerting)).resolved.sort()).toEqual(['infra-down:clickhouse-cold', 'infra-down:redis', 'integrity:integrity', 'job-failing:repair']);
      expect((await evaluate(alerting)).open).toBe(0);

      // Only tasks that exist and are enabled fail: deleting or disabling a failing task resolves its
      // alert, and runs recorded before tasks were rows (no task_id) never count.
      await runs([['nightly-repair', false, 'ClickHouse down', null], ['nightly-repair', false, 'ClickHouse down', null], ['retention', false, 'disk', null], ['retention', false, 'disk', null]]);
      for (let i = 0; i < 2; i++) {
        await pool.query(`INSERT INTO job_runs (job, task_name, started_at, finished_at, ok, error) VALUES ('integrity', NULL, now(), clock_timestamp(), false, 'legacy failure')`);
      }
      expect((await evaluate(alerting)).opened.sort()).toEqual(['job-failing:nightly-repair', 'job-failing:retention']);
      await pool.query(`DELETE FROM tasks WHERE name = 'nightly-repair'`);
      await pool.query(`UPDATE tasks SET enabled = false WHERE name = 'retention'`);
      expect((await evaluate(alerting)).resolved.sort()).toEqual(['job-failing:nightly-repair', 'job-failing:retention']);
      expect((await evaluate(alerting)).open).toBe(0);
      await pool.query(`DELETE FROM tasks WHERE name = 'retention'`);
    });

    it('an open hole older than the threshold opens an alert, a young one does not, its repair resolves it', async () => {
      const hot = createClickHouse(config.clickhouse.hot);
      try {
        await ensureSchema(hot, config.clickhouse.hot.database, await detectDialect(hot));
        const now = Date.now();
        const hole = (holeId: string, instrument: string, recordedAt: number): Hole => ({
          holeId, venue: 'binance_spot', marketType: 'spot', symbol: instrument.replace('USDT', '-USDT'), instrument, dataType: 'trade',
          fromTime: recordedAt - 10_000, toTime: recordedAt - 4_000, firstMissingId: '100', lastMissingId: '119', missingCount: 20,
          cause: 'disconnect', state: 'open', detail: '', recordedAt, updatedAt: recordedAt,
        });
        const old = hole('old-hole', 'BTCUSDT', now - 2 * 3600_000);
        const young = hole('young-hole', 'ETHUSDT', now - 60_000);
        await recordHoleStates(hot, config.clickhouse.hot.database, [holeStateRecord(old, 'open', '', old.recordedAt), holeStateRecord(young, 'open', '', young.recordedAt)]);
        expect((await post('/api/v1/monitoring/rules', { name: 'hole-unrepaired', kind: 'hole_unrepaired', severity: 'warning', threshold: 3600 })).status).toBe(201);

        expect((await evaluate(alerting)).opened).toEqual(['hole-unrepaired:binance_spot.trade.BTCUSDT']);
        const alert = (await new AlertStore(pool).alerts({ state: 'open', limit: 50 })).find((a) => a.rule === 'hole-unrepaired')!;
        expect(alert.message).toMatch(/^binance_spot trade BTCUSDT: 1 open hole \(6 s of data\), the oldest recorded 720\d s ago; run 'mprism repair'$/);
        expect(alert.details).toMatchObject({ holes: 1, holeIds: ['old-hole'] });

        await recordHoleStates(hot, config.clickhouse.hot.database, [holeStateRecord(old, 'repaired', 'refilled 20 trades', Date.now())]);
        expect((await evaluate(alerting)).resolved).toEqual(['hole-unrepaired:binance_spot.trade.BTCUSDT']);
      } finally {
        await hot.close();
      }
    });

    it('a brain that loses the lease stops delivering; the next leader delivers once; leading again it sends what that one left', async () => {
      // One receiver per brain, so each event is known by the brain that sent it.
      const receiverB = new Receiver();
      await receiverB.start();
      const receiverA = receiver;
      const withHook = (port: number): BrainDeps => ({
        ...deps(),
        config: { ...config, brain: { ...config.brain, alerts: { ...config.brain.alerts, webhookUrl: `http://127.0.0.1:${port}/hook` } } },
      });
      const a = createAlerting(withHook(receiverA.port), { retry: FAST_RETRY });
      const b = createAlerting(withHook(receiverB.port), { retry: FAST_RETRY });
      try {
        receiverA.always = 500;
        await setDiskThreshold(0);
        expect((await evaluate(a)).opened).toEqual([`disk:${config.home}`]);
        const alert = await diskAlert();
        await waitFor(() => receiverA.of(alert.id).length > 0, 10_000, 20, "A's first attempt");
        await a.onLeadershipLost();
        const sentByA = receiverA.of(alert.id).length;
        receiverA.always = null;

        // B leads: it takes up the event A left undelivered, and A sends nothing more.
        await evaluate(b);
        await waitFor(() => receiverB.of(alert.id).length > 0, 10_000, 20, "B's delivery");
        await new Promise((r) => setTimeout(r, 3000)); // longer than A's retries would wait (0.3 + 0.6 + 1.2 s)
        expect(receiverA.of(alert.id)).toHaveLength(sentByA);
        expect(receiverB.of(alert.id).map((e) => e.event)).toEqual(['opened']);
        expect((await deliveries(alert.id)).filter((d) => d.channel === 'webhook' && d.ok)).toHaveLength(1);

        // B resolves it but cannot deliver, then loses the lease; A leads again and sends the resolution.
        receiverB.always = 500;
        await setDiskThreshold(100);
        expect((await evaluate(b)).resolved).toEqual([`disk:${config.home}`]);
        await waitFor(() => receiverB.of(alert.id).some((e) => e.event === 'resolved'), 10_000, 20, "B's failed resolution");
        await b.onLeadershipLost();
        const sentByB = receiverB.of(alert.id).length;
        await evaluate(a);
        await waitFor(() => receiverA.of(alert.id).some((e) => e.event === 'resolved'), 10_000, 20, 'the resolution sent by A leading again');
        await new Promise((r) => setTimeout(r, 2000));
        expect(receiverB.of(alert.id)).toHaveLength(sentByB);
        expect(receiverA.of(alert.id).slice(sentByA).map((e) => e.event)).toEqual(['resolved']);
        const resolvedOk = (await deliveries(alert.id)).filter((d) => d.channel === 'webhook' && d.event === 'resolved' && d.ok);
        expect(resolvedOk).toHaveLength(1);
      } finally {
        receiverA.always = null;
        await a.close();
        await b.close();
        await receiverB.close();
      }
    }, 60_000);

    it('the CLI client lists and acknowledges; an unknown id is a usage error, a brain not answering unreachable', async () => {
      await setDiskThreshold(0);
      await evaluate(alerting);
      const alert = await diskAlert();
      const listed = await fetchAlerts(config, { all: false });
      expect(listed.map((a) => a.id)).toContain(alert.id);
      expect((await ackAlert(config, alert.id, 'carol')).ackedBy).toBe('carol');
      const missing = await ackAlert(config, 999_999, null).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(UsageError);
      const down = { ...config, brain: { ...config.brain, port: await freePort() } };
      const unreachable = await fetchAlerts(down, { all: true }).catch((e: unknown) => e);
      expect(unreachable).toBeInstanceOf(UnreachableError);
      await setDiskThreshold(100);
      await evaluate(alerting);
    });
  });
});
