import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BinaryInfo, CommandRunner, SearchPaths } from '../../src/lib/infra/binaries.js';

/** A fresh module per test: installMissing remembers across calls that apt-get update already ran. */
const load = async () => {
  vi.resetModules();
  return { ...(await import('../../src/lib/infra/binaries.js')), ...(await import('../../src/lib/errors.js')) };
};

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'mprism-unit-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function executable(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, '#!/bin/sh\n');
  chmodSync(file, 0o755);
  return file;
}

function search(): SearchPaths {
  return { path: [join(root, 'bin')], extra: [join(root, 'sbin')], postgresRoot: join(root, 'pg') };
}

describe('locateBinaries', () => {
  it('finds servers in PATH first, then the sbin directories, and reports the missing ones', async () => {
    const { locateBinaries } = await load();
    const nats = executable(join(root, 'bin'), 'nats-server');
    executable(join(root, 'sbin'), 'nats-server');
    const ch = executable(join(root, 'sbin'), 'clickhouse-server');
    writeFileSync(join(root, 'sbin', 'redis-server'), 'not executable');
    const found = Object.fromEntries(locateBinaries(search()).map((b) => [b.name, b]));
    expect(found.nats).toEqual({ name: 'nats', path: nats, debianPackage: 'nats-server' });
    expect(found['clickhouse-hot']?.path).toBe(ch);
    expect(found['clickhouse-cold']?.path).toBe(ch);
    expect(found.redis).toEqual({ name: 'redis', path: null, debianPackage: 'redis-server' });
    expect(found.postgres).toEqual({ name: 'postgres', path: null, debianPackage: 'postgresql' });
  });

  it('picks the newest complete PostgreSQL version directory (15 above 9.6, skipping one without initdb)', async () => {
    const { locateBinary } = await load();
    for (const v of ['9.6', '15', '16']) {
      executable(join(root, 'pg', v, 'bin'), 'postgres');
      executable(join(root, 'pg', v, 'bin'), 'pg_ctl');
      if (v !== '16') executable(join(root, 'pg', v, 'bin'), 'initdb');
    }
    expect(locateBinary('postgres', search()).path).toBe(join(root, 'pg', '15', 'bin', 'postgres'));
  });

  it('finds ZooKeeper only when both java and the zookeeper jar are there', async () => {
    const { locateBinary } = await load();
    const jar = join(root, 'zookeeper.jar');
    expect(locateBinary('zookeeper', search(), jar)).toEqual({ name: 'zookeeper', path: null, debianPackage: 'zookeeper' });
    const java = executable(join(root, 'bin'), 'java');
    expect(locateBinary('zookeeper', search(), jar).path).toBeNull();
    writeFileSync(jar, 'jar');
    expect(locateBinary('zookeeper', search(), jar)).toEqual({ name: 'zookeeper', path: java, debianPackage: 'zookeeper' });
  });

  it('orders version strings numerically', async () => {
    const { compareVersions } = await load();
    expect(['10', '9.6', '15', '9.10', '15.1'].sort(compareVersions)).toEqual(['9.6', '9.10', '10', '15', '15.1']);
  });
});

describe('installMissing', () => {
  const missing: BinaryInfo[] = [
    { name: 'nats', path: null, debianPackage: 'nats-server' },
    { name: 'clickhouse-hot', path: null, debianPackage: 'clickhouse-server' },
    { name: 'clickhouse-cold', path: null, debianPackage: 'clickhouse-server' },
    { name: 'redis', path: '/usr/bin/redis-server', debianPackage: 'redis-server' },
  ];

  function recorder(codes: Record<string, number> = {}) {
    const calls: { command: string; args: string[]; frontend: string | undefined }[] = [];
    const run: CommandRunner = async (command, args, env, log) => {
      calls.push({ command, args, frontend: env.DEBIAN_FRONTEND });
      log(`output of ${args[0]}`);
      return codes[args[0] as string] ?? 0;
    };
    return { calls, run };
  }

  it('runs apt-get update once, then installs each missing package once, non-interactively', async () => {
    const { installMissing } = await load();
    const aptGet = executable(join(root, 'sbin'), 'apt-get');
    const { calls, run } = recorder();
    const lines: string[] = [];
    await installMissing(missing, { log: (l) => lines.push(l), run, search: search(), uid: 0 });
    await installMissing(missing.slice(0, 1), { log: (l) => lines.push(l), run, search: search(), uid: 0 });
    expect(calls).toEqual([
      { command: aptGet, args: ['update'], frontend: 'noninteractive' },
      { command: aptGet, args: ['install', '-y', 'nats-server', 'clickhouse-server'], frontend: 'noninteractive' },
      { command: aptGet, args: ['install', '-y', 'nats-server'], frontend: 'noninteractive' },
    ]);
    expect(lines).toContain('output of install');
  });

  it('does nothing when nothing is missing', async () => {
    const { installMissing } = await load();
    const { calls, run } = recorder();
    await installMissing([missing[3] as BinaryInfo], { log: () => undefined, run, search: search(), uid: 0 });
    expect(calls).toEqual([]);
  });

  it('fails clearly without apt-get, without root, or when apt-get fails', async () => {
    const { installMissing, MissingBinaryError } = await load();
    const { run } = recorder({ install: 100 });
    const opts = { log: () => undefined, run, search: search(), uid: 0 };
    await expect(installMissing(missing, opts)).rejects.toThrow(/apt-get is not available/);
    executable(join(root, 'sbin'), 'apt-get');
    await expect(installMissing(missing, { ...opts, uid: 1000 })).rejects.toThrow(/needs root.*sudo apt-get install -y nats-server clickhouse-server/);
    const failure = installMissing(missing, opts);
    await expect(failure).rejects.toBeInstanceOf(MissingBinaryError);
    await expect(failure).rejects.toThrow(/apt-get install exited with code 100/);
  });
});
