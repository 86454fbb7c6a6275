import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { readBrainToken } from '../../src/lib/brain/token.js';
import { postgresUrl } from '../../src/lib/infra/endpoints.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { PACKAGE_ROOT } from '../../src/lib/paths.js';
import { eventually } from '../helpers/cli.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * Two brains (real processes from the built dist/, each with its own MPRISM_HOME and port) on one
 * PostgreSQL and Redis. One leads; the other is a hot standby that takes over when the leader is
 * killed with SIGKILL, and a task firing every second is never run by both at once.
 */
const TTL_SECONDS = 3;

let infra: TestInfra;
let pool: pg.Pool;
const homes: string[] = [];
const children: ChildProcess[] = [];

interface Brain {
  port: number;
  home: string;
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
}

interface Info {
  brainId: string;
  leading: boolean;
  leader: { brainId: string; fence: number } | null;
}

beforeAll(async () => {
  infra = await startTestInfra({
    servers: ['redis', 'postgres', 'clickhouse-hot', 'clickhouse-cold'],
    overrides: {
      brain: {
        tasks: [{ name: 'tick', cron: '* * * * * *', action: 'integrity', params: { sinceSeconds: 60 } }],
        init: { enabled: false },
        lease: { ttlSeconds: TTL_SECONDS },
      },
    },
  });
  pool = new pg.Pool({ connectionString: postgresUrl(infra.config) });
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await pool?.end();
  await infra?.stop();
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

/** A brain process in a home of its own, sharing the test's servers; only the API port differs. */
async function spawnBrain(): Promise<Brain> {
  const home = mkdtempSync(join(tmpdir(), 'mprism-brain-'));
  homes.push(home);
  const port = await freePort();
  const config = parse(readFileSync(infra.configFile, 'utf8')) as { brain: { port: number } };
  config.brain.port = port;
  const configFile = join(home, 'mprism.yaml');
  writeFileSync(configFile, stringify(config));
  const child = spawn(process.execPath, [join(PACKAGE_ROOT, 'dist', 'daemons', 'main.js'), 'brain'], {
    env: { ...process.env, MPRISM_HOME: home, MPRISM_CONFIG: configFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const output: string[] = [];
  child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
  child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { port, home, child, output, exited };
}

async function info(b: Brain): Promise<Info> {
  const res = await fetch(`http://127.0.0.1:${b.port}/api/v1/info`);
  return (await res.json()) as Info;
}

interface RunRow {
  id: number;
  brain_id: string;
  fence: number;
  started_at: Date;
  finished_at: Date | null;
  error: string | null;
}

async function runs(): Promise<RunRow[]> {
  const res = await pool.query<{ id: string; brain_id: string; fence: string; started_at: Date; finished_at: Date | null; error: string | null }>(
    "SELECT id, brain_id, fence, started_at, finished_at, error FROM job_runs WHERE task_name = 'tick' ORDER BY started_at, id",
  );
  return res.rows.map((r) => ({ ...r, id: Number(r.id), fence: Number(r.fence) }));
}

describe('two brains on one PostgreSQL and Redis', () => {
  it('one leads; kill -9 the leader and the standby leads within the lease ttl, never running the task alongside it', async () => {
    const a = await spawnBrain();
    const aInfo = await eventually('brain A to lead', async () => {
      const i = await info(a);
      return i.leading ? i : null;
    }, 30_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}\n${a.output.join('')}`);
    });
    const b = await spawnBrain();
    const bInfo = await eventually('brain B to answer as standby', async () => {
      const i = await info(b);
      return i.leader !== null ? i : null;
    }, 30_000, 100);
    expect(bInfo.leading).toBe(false);
    expect(bInfo.leader!.brainId).toBe(aInfo.brainId);
    expect(bInfo.brainId).not.toBe(aInfo.brainId);

    // The standby refuses to run a task and names the leader.
    const task = ((await (await fetch(`http://127.0.0.1:${b.port}/api/v1/tasks`)).json()) as { tasks: { id: number; name: string }[] }).tasks[0]!;
    const refused = await fetch(`http://127.0.0.1:${b.port}/api/v1/tasks/${task.id}/trigger`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readBrainToken(b.home)}` },
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: string }).error).toContain(`${aInfo.brainId} does`);
    const bStatus = (await (await fetch(`http://127.0.0.1:${b.port}/api/v1/status`)).json()) as Info;
    expect(bStatus).toMatchObject({ leading: false, leader: { brainId: aInfo.brainId } });

    // A runs the every-second task for a while; then it dies without a chance to hand the lease back.
    await eventually('a few runs by A', async () => (await runs()).filter((r) => r.brain_id === aInfo.brainId).length >= 3, 20_000, 200);
    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    await a.exited;

    const takeover = await eventually('brain B to lead', async () => {
      const i = await info(b);
      return i.leading ? { ...i, at: Date.now() } : null;
    }, 20_000, 50);
    const takeoverMs = takeover.at - killedAt;
    // The lease lapses at most a ttl after A's last renewal; B tries every ttl/3.
    expect(takeoverMs).toBeLessThanOrEqual(TTL_SECONDS * 1000 + (TTL_SECONDS * 1000) / 3 + 1000);
    expect(takeover.leader!.fence).toBeGreaterThan(aInfo.leader!.fence);

    await eventually('a few runs by B', async () => (await runs()).filter((r) => r.brain_id === takeover.brainId).length >= 3, 20_000, 200);
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);

    const all = await runs();
    const byA = all.filter((r) => r.brain_id === aInfo.brainId);
    const byB = all.filter((r) => r.brain_id === takeover.brainId);
    expect(byA.length + byB.length).toBe(all.length);
    expect(new Set(byA.map((r) => r.fence))).toEqual(new Set([aInfo.leader!.fence]));
    expect(new Set(byB.map((r) => r.fence))).toEqual(new Set([takeover.leader!.fence]));
    // Nothing is left open: A's run cut short by the kill (if any) was closed by B when it took over.
    expect(all.filter((r) => r.finished_at === null)).toEqual([]);
    // No run of A started after B's first, and no two runs overlap in time.
    const firstOfB = byB[0]!.started_at.getTime();
    expect(byA.every((r) => r.started_at.getTime() < firstOfB)).toBe(true);
    for (let i = 1; i < all.length; i++) {
      expect(all[i]!.started_at.getTime(), `run ${all[i]!.id} starts before run ${all[i - 1]!.id} ended`).toBeGreaterThanOrEqual(all[i - 1]!.finished_at!.getTime());
    }
    // The every-second task kept running under each leader, with the gap of the takeover between.
    expect(byA.length).toBeGreaterThanOrEqual(3);
    expect(byB.length).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it('a leader that stops hands the lease back: the standby leads at once, not after the ttl', async () => {
    const a = await spawnBrain();
    const aInfo = await eventually('brain A to lead', async () => {
      const i = await info(a);
      return i.leading ? i : null;
    }, 30_000, 100);
    const b = await spawnBrain();
    await eventually('brain B to answer as standby', async () => ((await info(b)).leader !== null ? true : null), 30_000, 100);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    const stoppedAt = Date.now();
    const bLeads = await eventually('brain B to lead', async () => {
      const i = await info(b);
      return i.leading ? i : null;
    }, 20_000, 50);
    // Released, so B takes it at its next try (every ttl/3), well before a ttl has passed.
    expect(Date.now() - stoppedAt).toBeLessThan((TTL_SECONDS * 1000 * 2) / 3);
    expect(bLeads.leader!.fence).toBeGreaterThan(aInfo.leader!.fence);
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
  }, 120_000);
});
