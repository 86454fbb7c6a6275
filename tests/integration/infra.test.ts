import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { activeInfra, homePaths, type InfraName } from '../../src/lib/paths.js';
import { probeInfra, ensurePostgresDatabase } from '../../src/lib/infra/probe.js';
import { LocalServerError, startLocalServer, stopLocalServer } from '../../src/lib/infra/local-servers.js';
import { localServerSpec } from '../../src/lib/infra/specs.js';
import { portProblem } from '../../src/lib/infra/server-spec.js';
import { httpGet } from '../../src/lib/infra/http-get.js';
import { isAlive, readPidFile, waitFor } from '../../src/lib/process-util.js';
import { UsageError } from '../../src/lib/errors.js';

const VERSION = /^\d+\.\d+/;

async function chQuery(port: number, sql: string): Promise<string> {
  const url = new URL(`http://127.0.0.1:${port}/`);
  url.searchParams.set('query', sql);
  const res = await httpGet(url, { timeoutMs: 5000 });
  expect(res.status, res.body).toBe(200);
  return res.body.trim();
}

async function killHard(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !isAlive(pid), { timeoutMs: 5000, what: `pid ${pid} to die` });
}

describe('local infra servers', () => {
  let infra: TestInfra;
  const pids = new Map<InfraName, number>();

  beforeAll(async () => {
    infra = await startTestInfra();
  });
  afterAll(async () => {
    await infra?.stop();
  });

  it('starts all five: each answers its probe with a version and records its pid', async () => {
    const statuses = await Promise.all(activeInfra(infra.config).map((name) => probeInfra(infra.config, name)));
    for (const status of statuses) {
      expect(status, JSON.stringify(status)).toMatchObject({ mode: 'local', up: true, error: null });
      expect(status.version).toMatch(VERSION);
      const pid = readPidFile(homePaths(infra.home).pidFile(status.name));
      expect(pid).not.toBeNull();
      expect(status.pid).toBe(pid);
      pids.set(status.name, pid as number);
    }
    expect(statuses.find((s) => s.name === 'nats')?.version).toBe('2.9.10');
    expect(statuses.find((s) => s.name === 'clickhouse-hot')?.version).toBe('18.16.1');
  });

  it('keeps everything under the temp MPRISM_HOME and binds only the configured loopback ports', () => {
    const paths = homePaths(infra.home);
    expect(existsSync(join(paths.dataDir('clickhouse-hot'), 'config.xml'))).toBe(true);
    expect(existsSync(join(paths.dataDir('postgres'), 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(paths.dataDir('nats'), 'jetstream'))).toBe(true);
    for (const name of activeInfra(infra.config)) expect(existsSync(paths.logFile(name)), name).toBe(true);
  });

  it('is idempotent: starting again returns the running servers with the same pids', async () => {
    const again = await Promise.all(activeInfra(infra.config).map((name) => startLocalServer(infra.config, name)));
    for (const status of again) {
      expect(status.up).toBe(true);
      expect(status.pid).toBe(pids.get(status.name));
    }
  });

  it('runs the two ClickHouse servers side by side, and cold can read hot with remote()', async () => {
    const { hot, cold } = infra.config.clickhouse;
    expect(await chQuery(cold.httpPort, `SELECT count() FROM remote('127.0.0.1:${hot.tcpPort}', system, one)`)).toBe('1');
    // The profile must allow LowCardinality on 18.16.
    expect(await chQuery(hot.httpPort, "SELECT toTypeName(toLowCardinality('x'))")).toBe('LowCardinality(String)');
    expect(await chQuery(hot.httpPort, 'SELECT timezone()')).toMatch(/UTC/);
  });

  it('has created the configured PostgreSQL database, and ensurePostgresDatabase is idempotent', async () => {
    expect(await ensurePostgresDatabase(infra.config)).toBe(false);
    const other = { ...infra.config, postgres: { ...infra.config.postgres, database: 'mprism_extra' } };
    expect(await ensurePostgresDatabase(other)).toBe(true);
    expect(await ensurePostgresDatabase(other)).toBe(false);
    expect((await probeInfra(other, 'postgres')).up).toBe(true);
  });

  it('recovers after kill -9 (stale pid files, stale postmaster.pid) with new processes', async () => {
    const victims: InfraName[] = ['postgres', 'redis', 'clickhouse-cold'];
    await Promise.all(victims.map((name) => killHard(pids.get(name) as number)));
    for (const name of victims) expect((await probeInfra(infra.config, name, 500)).up).toBe(false);
    const restarted = await Promise.all(victims.map((name) => startLocalServer(infra.config, name)));
    for (const status of restarted) {
      expect(status.up, status.error ?? '').toBe(true);
      expect(status.pid).not.toBe(pids.get(status.name));
      pids.set(status.name, status.pid as number);
    }
  });

  it('stops each server: no process left, port free, pid file gone; stopping again reports nothing ran', async () => {
    const stopped = await Promise.all(activeInfra(infra.config).map((name) => stopLocalServer(infra.config, name, 10_000)));
    expect(stopped).toEqual(activeInfra(infra.config).map(() => true));
    for (const name of activeInfra(infra.config)) {
      const spec = localServerSpec(infra.config, name);
      expect(isAlive(pids.get(name) as number), name).toBe(false);
      expect(existsSync(spec.pidFile), name).toBe(false);
      for (const p of spec.ports) expect(await portProblem(p.host, p.port), `${name} ${p.setting}`).toBeNull();
      expect((await probeInfra(infra.config, name, 500)).up).toBe(false);
    }
    expect(await Promise.all(activeInfra(infra.config).map((name) => stopLocalServer(infra.config, name, 1000)))).toEqual(
      activeInfra(infra.config).map(() => false),
    );
  });
});

describe('local infra start failures', () => {
  let infra: TestInfra;
  let blocker: Server | null = null;

  beforeAll(async () => {
    infra = await startTestInfra({ servers: [] });
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => (blocker ? blocker.close(() => resolve()) : resolve()));
    await infra?.stop();
  });

  it('refuses to start on a port another process holds, naming the setting', async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker?.listen(infra.config.nats.monitorPort, '127.0.0.1', resolve));
    await expect(startLocalServer(infra.config, 'nats')).rejects.toThrow(/nats\.monitorPort.*already in use/);
    expect(existsSync(homePaths(infra.home).pidFile('nats'))).toBe(false);
  });

  it('fails fast with the tail of the server log when the server dies during start-up', async () => {
    const dataDir = homePaths(infra.home).dataDir('clickhouse-hot');
    mkdirSync(join(dataDir, 'metadata', 'default'), { recursive: true });
    writeFileSync(join(dataDir, 'metadata', 'default', 'broken.sql'), 'ATTACH TABLE broken (x UInt8) ENGINE = NoSuchEngine\n');
    const error = await startLocalServer(infra.config, 'clickhouse-hot').then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(LocalServerError);
    // 18.16 reports the broken metadata as the unknown engine or, loading it on a worker thread, as
    // a bare system_error; on a loaded machine it can also abort in glibc first (seen in a run with 5
    // busy loops). Whichever way it dies, the error log's tail must say so in the message.
    expect(String(error)).toMatch(/exited during start-up[\s\S]*clickhouse-server\.err\.log[\s\S]*<Error>.*(Unknown table engine NoSuchEngine|loading metadata|Received signal)/);
    // "exited during start-up" (not "did not become ready") is what shows it failed on the exit
    // rather than waiting out the readiness timeout; no wall-clock assertion, which CI load breaks.
    expect(String(error)).not.toMatch(/did not become ready/);
    expect(existsSync(homePaths(infra.home).pidFile('clickhouse-hot'))).toBe(false);
  });
});

describe('external infra', () => {
  it('probes configured URLs without throwing, reports them down with a reason, and never starts them', async () => {
    const closed = await freePort();
    const infra = await startTestInfra({
      servers: [],
      overrides: {
        nats: { url: `nats://127.0.0.1:${closed}` },
        clickhouse: { hot: { url: `http://user:secret@127.0.0.1:${closed}` }, cold: { url: `http://127.0.0.1:${closed}` } },
        redis: { url: `redis://127.0.0.1:${closed}` },
        postgres: { url: `postgres://postgres@127.0.0.1:${closed}/mprism` },
      },
    });
    try {
      const started = Date.now();
      const statuses = await Promise.all(activeInfra(infra.config).map((name) => probeInfra(infra.config, name, 1000)));
      expect(Date.now() - started).toBeLessThan(5000);
      for (const s of statuses) {
        expect(s, JSON.stringify(s)).toMatchObject({ mode: 'external', up: false, pid: null, version: null });
        expect(s.error).toBeTruthy();
        expect(s.address).not.toContain('secret');
      }
      await expect(startLocalServer(infra.config, 'redis')).rejects.toBeInstanceOf(UsageError);
    } finally {
      await infra.stop();
    }
  });
});
