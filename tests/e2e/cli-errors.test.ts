import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { homePaths, PACKAGE_ROOT } from '../../src/lib/paths.js';
import { acquireLock } from '../../src/lib/supervisor/lock.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../../src/lib/infra/free-port.js';

let home: string;
let env: Record<string, string>;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'mprism-cli-'));
  env = { MPRISM_HOME: home, PATH: process.env.PATH ?? '' };
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe('CLI errors', () => {
  it('an invalid config file fails with file: path: message and exit 2', async () => {
    const file = join(home, 'mprism.yaml');
    writeFileSync(file, 'nats:\n  port: "not a port"\nstorage:\n  batchSize: 0\n');
    const r = await runCli(['status'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}: nats.port: `);
    expect(r.stderr).toContain(`${file}: storage.batchSize: `);
  });

  it('an unreachable configured NATS URL fails start with exit 3, naming it', async () => {
    const port = await freePort();
    const r = await runCli(['start', 'nats'], { ...env, MPRISM_NATS_URL: `nats://127.0.0.1:${port}` });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`nats unreachable at nats://127\\.0\\.0\\.1:${port}`));
  });

  it('a configured NATS URL that is up is used: no local nats-server is started', async () => {
    // A TCP server that speaks just enough NATS (INFO line) to count as reachable.
    const port = await freePort();
    const fake: Server = createServer((s) => s.end('INFO {"server_id":"x","version":"2.9.10","max_payload":1048576}\r\n'));
    await new Promise<void>((r) => fake.listen(port, '127.0.0.1', () => r()));
    try {
      const r = await runCli(['start', 'nats', '--json'], { ...env, MPRISM_NATS_URL: `nats://127.0.0.1:${port}` });
      expect(r.code, r.stderr).toBe(0);
      const s = await runCli(['status', '--json'], { ...env, MPRISM_NATS_URL: `nats://127.0.0.1:${port}` });
      expect(JSON.parse(s.stdout).processes.find((p: { name: string }) => p.name === 'nats')).toMatchObject({ state: 'external', pid: null });
    } finally {
      fake.close();
    }
  });

  it('unknown names and bad flags are usage errors (exit 2)', async () => {
    expect((await runCli(['start', 'nosuch'], env)).code).toBe(2);
    expect((await runCli(['stop', '--timeout', 'soon'], env)).code).toBe(2);
    expect((await runCli(['integrity', '--since', 'yesterday'], env)).code).toBe(2);
    expect((await runCli(['frobnicate'], env)).code).toBe(2);
    expect((await runCli(['completion', 'tcsh'], env)).code).toBe(2);
  });

  it('a second instance of a daemon refuses while the lock is live, naming the holder', async () => {
    mkdirSync(homePaths(home).run, { recursive: true });
    const lock = acquireLock(homePaths(home).lockFile('storage'), 'storage');
    try {
      const r = await execa(process.execPath, [join(PACKAGE_ROOT, 'dist', 'daemons', 'main.js'), 'storage'], { env, reject: false, timeout: 30_000 });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toContain(`storage is already running (pid ${process.pid}`);
    } finally {
      lock.release();
    }
  });

  it('clean removes a stale lock and never touches data', async () => {
    const p = homePaths(home);
    mkdirSync(p.run, { recursive: true });
    mkdirSync(p.dataDir('nats'), { recursive: true });
    writeFileSync(join(p.dataDir('nats'), 'keep'), 'data');
    writeFileSync(p.lockFile('collector'), JSON.stringify({ name: 'collector', pid: 999_999_9, startTime: '1', acquiredAt: 'x' }));
    const dry = await runCli(['clean', '--dry-run', '--json'], env);
    expect(JSON.parse(dry.stdout).files).toEqual([expect.objectContaining({ path: p.lockFile('collector'), removed: false })]);
    const r = await runCli(['clean'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`removed ${p.lockFile('collector')}: stale lock`);
    expect((await runCli(['clean'], env)).stdout).toContain('nothing to clean');
  });
});
