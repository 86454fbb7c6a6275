import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import pino from 'pino';
import { mkdirSync } from 'node:fs';
import { homePaths } from '../../src/lib/paths.js';
import { isAlive } from '../../src/lib/process-util.js';
import { serveControl } from '../../src/lib/supervisor/control.js';
import { Supervisor } from '../../src/lib/supervisor/supervisor.js';
import type { ActionRunner } from '../../src/lib/brain/actions.js';
import type { JobRun } from '../../src/lib/brain/history.js';
import type { Task } from '../../src/lib/brain/tasks.js';
import { readBrainToken } from '../../src/lib/brain/token.js';
import { createBrain } from '../../src/daemons/brain/run.js';
import { postgresUrl } from '../../src/lib/infra/endpoints.js';
import { runDaemon, stopDaemon, type RunningDaemon } from '../helpers/daemons.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';
import { eventually, runCli } from '../helpers/cli.js';
import { freePort } from '../../src/lib/infra/free-port.js';

let infra: TestInfra;
let daemon: RunningDaemon;
let token: string;
let pool: pg.Pool;

/**
 * The `health` action held open until the test releases it, so a run's overlap is decided by the
 * test, not by timing. Every call is recorded with its start and end.
 */
const gate = {
  release: null as (() => void) | null,
  calls: [] as { start: number; end: number | null; trigger: string }[],
  held: false,
  /** The next runs report a problem. */
  problems: false,
};
const gatedHealth: ActionRunner = async (ctx) => {
  const call = { start: Date.now(), end: null as number | null, trigger: ctx.trigger };
  gate.calls.push(call);
  if (gate.held) await new Promise<void>((resolve) => (gate.release = resolve));
  call.end = Date.now();
  return { result: { held: true }, problems: gate.problems ? ['asked for a problem'] : [] };
};

beforeAll(async () => {
  infra = await startTestInfra({
    servers: ['redis', 'postgres'],
    overrides: {
      brain: {
        tasks: [{ name: 'seeded-health', cron: '0 0 1 1 *', action: 'health' }],
        init: { enabled: false },
        lease: { ttlSeconds: 3 },
      },
    },
  });
  daemon = runDaemon(createBrain((runners) => ({ ...runners, health: gatedHealth })), infra.config);
  pool = new pg.Pool({ connectionString: postgresUrl(infra.config) });
  await eventually('the brain to lead', async () => ((await get('/api/v1/info')).body as { leading: boolean }).leading, 20_000, 100);
  token = readBrainToken(infra.home);
});

afterAll(async () => {
  gate.release?.();
  if (daemon) await stopDaemon(daemon);
  await pool?.end();
  await infra?.stop();
});

const url = (path: string) => `http://127.0.0.1:${infra.config.brain.port}${path}`;

async function get(path: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url(path));
  return { status: res.status, body: await res.json() };
}

async function send(method: string, path: string, body?: unknown, auth: string | null = token): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url(path), {
    method,
    headers: { 'content-type': 'application/json', ...(auth === null ? {} : { authorization: `Bearer ${auth}` }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const waitRun = (runId: number) =>
  eventually(`run ${runId} to finish`, async () => {
    const r = (await get(`/api/v1/runs/${runId}`)).body as JobRun;
    return r.finishedAt !== null ? r : null;
  }, 20_000, 100);

describe('tasks through the brain API', () => {
  it('lists the seeded task, creates, reads, changes, toggles and deletes tasks, with the token', async () => {
    const listed = (await get('/api/v1/tasks')).body as { tasks: Task[] };
    expect(listed.tasks.map((t) => [t.name, t.action, t.cron, t.timezone, t.enabled])).toEqual([['seeded-health', 'health', '0 0 1 1 *', 'UTC', true]]);

    const created = await send('POST', '/api/v1/tasks', { name: 'hourly-check', cron: '15 * * * *', timezone: 'Europe/Berlin', action: 'integrity', params: { sinceSeconds: 120 } });
    expect(created.status).toBe(201);
    const task = created.body as unknown as Task;
    expect(task).toMatchObject({ name: 'hourly-check', cron: '15 * * * *', timezone: 'Europe/Berlin', action: 'integrity', params: { sinceSeconds: 120 }, enabled: true, skipped: 0 });
    expect((await get(`/api/v1/tasks/${task.id}`)).body).toEqual(task);

    const changed = await send('PUT', `/api/v1/tasks/${task.id}`, { cron: '*/30 * * * * *', params: { sinceSeconds: 60 } });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ id: task.id, name: 'hourly-check', cron: '*/30 * * * * *', timezone: 'Europe/Berlin', params: { sinceSeconds: 60 } });

    expect((await send('POST', `/api/v1/tasks/${task.id}/toggle`)).body).toMatchObject({ enabled: false });
    expect((await send('POST', `/api/v1/tasks/${task.id}/toggle`)).body).toMatchObject({ enabled: true });
    // The change is in PostgreSQL, where another brain would read it.
    const row = await pool.query('SELECT cron, enabled FROM tasks WHERE id = $1', [task.id]);
    expect(row.rows[0]).toEqual({ cron: '*/30 * * * * *', enabled: true });

    expect((await send('DELETE', `/api/v1/tasks/${task.id}`)).status).toBe(200);
    expect((await get(`/api/v1/tasks/${task.id}`)).status).toBe(404);
    expect((await send('DELETE', `/api/v1/tasks/${task.id}`)).status).toBe(404);
  });

  it('refuses every mutation without the token (401) and changes nothing', async () => {
    const before = (await get('/api/v1/tasks')).body;
    const seeded = (before as { tasks: Task[] }).tasks[0]!;
    for (const [method, path, body] of [
      ['POST', '/api/v1/tasks', { name: 'sneaky', cron: '* * * * *', action: 'repair' }],
      ['PUT', `/api/v1/tasks/${seeded.id}`, { enabled: false }],
      ['DELETE', `/api/v1/tasks/${seeded.id}`, undefined],
      ['POST', `/api/v1/tasks/${seeded.id}/toggle`, undefined],
      ['POST', `/api/v1/tasks/${seeded.id}/trigger`, undefined],
      ['POST', '/api/v1/services/storage/restart', undefined],
    ] as const) {
      expect((await send(method, path, body, null)).status, `${method} ${path}`).toBe(401);
      expect((await send(method, path, body, 'x'.repeat(43))).status, `${method} ${path} wrong token`).toBe(401);
    }
    expect((await get('/api/v1/tasks')).body).toEqual(before);
    expect(gate.calls).toEqual([]);
  });

  it('answers bad input with 400 naming the field, a taken name with 409, an unknown id with 404', async () => {
    const base = { name: 'valid-name', cron: '* * * * *', action: 'health' };
    for (const [body, field] of [
      [{ ...base, name: 'Bad Name' }, 'name'],
      [{ ...base, cron: '61 * * * *' }, 'cron'],
      [{ ...base, cron: '* * *' }, 'cron'],
      [{ ...base, timezone: 'Mars/Olympus' }, 'timezone'],
      [{ ...base, action: 'backup' }, 'action'],
      [{ ...base, params: 'x' }, 'params'],
      [{ ...base, enabled: 1 }, 'enabled'],
      [{ ...base, owner: 'me' }, 'owner'],
      [{ cron: '* * * * *', action: 'health' }, 'name'],
      // Params the action would fail on at every run.
      [{ ...base, params: { sinceSeconds: 60 } }, 'params.sinceSeconds'],
      [{ ...base, action: 'integrity', params: { sinceSeconds: -1 } }, 'params.sinceSeconds'],
      [{ ...base, action: 'retention', params: { dryRun: 'yes' } }, 'params.dryRun'],
      [{ ...base, action: 'backfill', params: { since: 'x' } }, 'params.since'],
      [{ ...base, action: 'backfill', params: { venue: 'mtgox' } }, 'params.venue'],
    ] as const) {
      const r = await send('POST', '/api/v1/tasks', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.field, JSON.stringify(body)).toBe(field);
    }
    const seeded = ((await get('/api/v1/tasks')).body as { tasks: Task[] }).tasks[0]!;
    expect((await send('POST', '/api/v1/tasks', { ...base, name: 'seeded-health' })).status).toBe(409);
    const badPut = await send('PUT', `/api/v1/tasks/${seeded.id}`, { timezone: 'Nowhere' });
    expect([badPut.status, badPut.body.field]).toEqual([400, 'timezone']);
    // A change of action is checked against the params the task keeps.
    const integrity = await send('POST', '/api/v1/tasks', { ...base, name: 'deep-check', action: 'integrity', params: { sinceSeconds: 600 } });
    expect(integrity.status).toBe(201);
    const toHealth = await send('PUT', `/api/v1/tasks/${(integrity.body.id as number)}`, { action: 'health' });
    expect([toHealth.status, toHealth.body.field]).toEqual([400, 'params.sinceSeconds']);
    expect((await send('DELETE', `/api/v1/tasks/${(integrity.body.id as number)}`)).status).toBe(200);
    for (const path of ['/api/v1/tasks/abc', '/api/v1/tasks/0', '/api/v1/tasks/1.5/history']) {
      const r = await get(path);
      expect([r.status, (r.body as { field: string }).field], path).toEqual([400, 'id']);
    }
    expect((await get('/api/v1/tasks/999999')).status).toBe(404);
    expect((await send('POST', '/api/v1/tasks/999999/trigger')).status).toBe(404);
    expect((await get(`/api/v1/tasks/${seeded.id}/history?limit=0`)).body).toMatchObject({ field: 'limit' });
    expect((await get('/api/v1/services/nope')).status).toBe(404);
  });

  it('triggers a run (202), skips and counts a trigger while it runs (409), and records it with trigger, fence and brain', async () => {
    const seeded = ((await get('/api/v1/tasks')).body as { tasks: Task[] }).tasks.find((t) => t.name === 'seeded-health')!;
    gate.held = true;
    const first = await send('POST', `/api/v1/tasks/${seeded.id}/trigger`);
    expect(first.status).toBe(202);
    const runId = first.body.runId as number;
    expect(first.body).toMatchObject({ taskId: seeded.id, taskName: 'seeded-health' });
    await eventually('the action to start', async () => gate.release !== null, 5_000, 20);

    const second = await send('POST', `/api/v1/tasks/${seeded.id}/trigger`);
    expect(second.status).toBe(409);
    expect(second.body.error).toMatch(/in progress.*skipped/);
    const status = (await get('/api/v1/status')).body as { tasks: { name: string; running: boolean; skipped: number }[] };
    expect(status.tasks.find((t) => t.name === 'seeded-health')).toMatchObject({ running: true, skipped: 1 });

    gate.held = false;
    gate.release!();
    const run = await waitRun(runId);
    const info = (await get('/api/v1/info')).body as { brainId: string; leader: { fence: number } };
    expect(run).toMatchObject({ id: runId, job: 'health', taskId: seeded.id, taskName: 'seeded-health', trigger: 'manual', ok: true, result: { held: true }, brainId: info.brainId, fence: info.leader.fence });
    expect(gate.calls).toHaveLength(1);

    const history = (await get(`/api/v1/tasks/${seeded.id}/history?limit=5`)).body as { runs: JobRun[] };
    expect(history.runs.map((r) => r.id)).toEqual([runId]);
    expect((await get(`/api/v1/tasks/${seeded.id}`)).body).toMatchObject({ skipped: 1 });
    const metrics = await (await fetch(url('/metrics'))).text();
    expect(metrics).toContain('mprism_brain_job_runs_total{job="seeded-health",result="skipped"} 1');
    expect(metrics).toContain('mprism_brain_job_runs_total{job="seeded-health",result="ok"} 1');
  });

  it('a task firing every second while its run lasts longer is skipped and counted, never overlapping itself', async () => {
    gate.calls.length = 0;
    gate.held = true;
    const created = await send('POST', '/api/v1/tasks', { name: 'every-second', cron: '* * * * * *', action: 'health' });
    const id = (created.body as unknown as Task).id;
    await eventually('the scheduled run to start', async () => gate.release !== null && gate.calls.length === 1, 5_000, 20);
    // Two or three more ticks pass while the run is held.
    await new Promise((r) => setTimeout(r, 2_500));
    gate.held = false;
    gate.release!();
    const skipped = Number((await pool.query('SELECT skipped FROM tasks WHERE id = $1', [id])).rows[0].skipped);
    expect(skipped).toBeGreaterThanOrEqual(2);
    // The scheduled skips are counted under the task's name, as its runs are.
    const metrics = await (await fetch(`http://127.0.0.1:${infra.config.brain.port}/metrics`)).text();
    const counted = /mprism_brain_job_runs_total\{job="every-second",result="skipped"\} (\d+)/.exec(metrics);
    expect(Number(counted?.[1])).toBeGreaterThanOrEqual(2);
    await eventually('a few more runs', async () => gate.calls.length >= 3, 10_000, 100);
    expect((await send('POST', `/api/v1/tasks/${id}/toggle`)).body).toMatchObject({ enabled: false });
    await eventually('the last run to end', async () => gate.calls.every((c) => c.end !== null), 5_000, 50);

    const runs = (await pool.query<{ started_at: Date; finished_at: Date; trigger: string }>(
      'SELECT started_at, finished_at, trigger FROM job_runs WHERE task_id = $1 ORDER BY started_at', [id],
    )).rows;
    expect(runs.length).toBe(gate.calls.length);
    expect(runs.every((r) => r.trigger === 'schedule')).toBe(true);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.started_at.getTime()).toBeGreaterThanOrEqual(runs[i - 1]!.finished_at.getTime());
    // Disabled: no more runs.
    const count = gate.calls.length;
    await new Promise((r) => setTimeout(r, 1_500));
    expect(gate.calls.length).toBe(count);
  });

  it('lists the services from the registry and the supervisor view; restarting one needs the supervisor', async () => {
    const services = (await get('/api/v1/services')).body as { services: { name: string; supervisorReachable: boolean }[]; errors: string[] };
    expect(services.services.map((s) => s.name)).toEqual(['simulator', 'storage', 'replication', 'collector', 'brain']);
    expect(services.errors).toEqual(['supervisor: not running (showing its last saved state)']);
    expect((await get('/api/v1/services/storage')).body).toMatchObject({ name: 'storage', registry: null, supervisor: null, supervisorReachable: false });
    const restart = await send('POST', '/api/v1/services/storage/restart');
    expect(restart.status).toBe(503);
    expect(restart.body.error).toMatch(/supervisor unreachable/);
    expect((await send('POST', '/api/v1/services/brain/restart')).status).toBe(409);
    expect((await send('POST', '/api/v1/services/nats/restart')).status).toBe(404);
  });

  it('restarts a daemon through the running supervisor and shows its new process', async () => {
    mkdirSync(homePaths(infra.home).run, { recursive: true });
    const sup = new Supervisor(infra.config, pino({ level: 'silent' }));
    const control = await serveControl(homePaths(infra.home).supervisorSocket, sup, () => undefined);
    try {
      // The simulator needs no other server, so it starts and becomes healthy.
      expect((await sup.start(['simulator'], true)).ok).toBe(true);
      const before = sup.snapshot().daemons.find((d) => d.name === 'simulator')!;
      const view = (await get('/api/v1/services/simulator')).body as { supervisorReachable: boolean; supervisor: { state: string; pid: number } };
      expect(view).toMatchObject({ supervisorReachable: true, supervisor: { state: 'running', pid: before.pid } });

      const restarted = await send('POST', '/api/v1/services/simulator/restart');
      expect(restarted.status, JSON.stringify(restarted.body)).toBe(200);
      expect(restarted.body).toMatchObject({ name: 'simulator', restarted: true, start: { ok: true } });
      const after = sup.snapshot().daemons.find((d) => d.name === 'simulator')!;
      expect(after.state).toBe('running');
      expect(after.pid).not.toBe(before.pid);
      expect(isAlive(before.pid!)).toBe(false);
      // It kept the simulate mode the platform runs with.
      expect(sup.snapshot().simulate).toBe(true);
    } finally {
      await sup.shutdown(5000);
      await new Promise<void>((resolve) => control.close(() => resolve()));
    }
  });

  it('mprism tasks lists, runs (waiting for the outcome), disables and enables tasks; exit 1 on problems, 2 on an unknown name, 3 when the brain is unreachable', async () => {
    gate.held = false;
    const list = await runCli(['tasks', '--json'], infra.env);
    expect(list.code, list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as { leading: boolean; leader: { brainId: string }; tasks: { name: string }[] };
    expect(listed.leading).toBe(true);
    expect(listed.tasks.map((t) => t.name)).toContain('seeded-health');
    const human = await runCli(['tasks'], infra.env);
    expect(human.stdout).toContain(`leader: ${listed.leader.brainId} (this brain)`);
    expect(human.stdout).toMatch(/seeded-health\s+health\s+0 0 1 1 \*\s+UTC\s+yes/);
    expect(human.stdout).not.toContain(token);

    const run = await runCli(['tasks', 'run', 'seeded-health', '--json'], infra.env);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ taskName: 'seeded-health', trigger: 'manual', ok: true });
    const noWait = await runCli(['tasks', 'run', 'seeded-health', '--no-wait', '--json'], infra.env);
    expect(noWait.code, noWait.stderr).toBe(0);
    await waitRun((JSON.parse(noWait.stdout) as { runId: number }).runId);

    expect((await send('POST', '/api/v1/tasks', { name: 'finds-problems', cron: '0 0 1 1 *', action: 'health' })).status).toBe(201);
    gate.problems = true;
    const problems = await runCli(['tasks', 'run', 'finds-problems'], infra.env);
    gate.problems = false;
    expect(problems.code).toBe(1);
    expect(problems.stdout).toMatch(/run \d+ of finds-problems: problems found/);

    const disabled = await runCli(['tasks', 'disable', 'seeded-health', '--json'], infra.env);
    expect(JSON.parse(disabled.stdout)).toMatchObject({ name: 'seeded-health', enabled: false });
    expect((await runCli(['tasks', 'enable', 'seeded-health'], infra.env)).stdout).toContain('seeded-health enabled');

    const unknown = await runCli(['tasks', 'run', 'nope'], infra.env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no task named nope/);

    const elsewhere = { ...infra.env, MPRISM_BRAIN_PORT: String(await freePort()) };
    const unreachable = await runCli(['tasks'], elsewhere);
    expect(unreachable.code, unreachable.stderr + unreachable.stdout).toBe(3);
    expect(unreachable.stderr).toMatch(/brain unreachable/);
  });
});
