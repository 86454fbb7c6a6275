import { describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLoopback, ownsProcess, portProblem, shellQuote, urlHost } from '../../src/lib/infra/server-spec.js';
import { ancestors, canTraverse } from '../../src/lib/infra/postgres-server.js';

describe('postgres reachability', () => {
  it('lists the directories on the way to a path, outermost first', () => {
    expect(ancestors('/root/.mprism/data/postgres')).toEqual(['/root', '/root/.mprism', '/root/.mprism/data']);
    expect(ancestors('/x')).toEqual([]);
  });

  it('decides traversal like the kernel does for owner, group and others', () => {
    const pg = { uid: 101, gid: 104, groups: [104, 103] };
    expect(canTraverse(0o700, { uid: 0, gid: 0 }, pg)).toBe(false); // /root, mkdtemp dirs
    expect(canTraverse(0o701, { uid: 0, gid: 0 }, pg)).toBe(true);
    expect(canTraverse(0o750, { uid: 0, gid: 103 }, pg)).toBe(true);
    expect(canTraverse(0o705, { uid: 0, gid: 103 }, pg)).toBe(false); // the group bits apply, not others
    expect(canTraverse(0o700, { uid: 101, gid: 0 }, pg)).toBe(true);
  });
});

describe('helpers', () => {
  it('quotes for /bin/sh', () => {
    const value = "/tmp/it's here $HOME";
    expect(execFileSync('/bin/sh', ['-c', `printf %s ${shellQuote(value)}`]).toString()).toBe(value);
    expect(shellQuote('')).toBe("''");
  });

  it('brackets IPv6 hosts for URLs and knows loopback addresses', () => {
    expect(urlHost('::1')).toBe('[::1]');
    expect(urlHost('127.0.0.1')).toBe('127.0.0.1');
    expect(isLoopback('127.0.0.1') && isLoopback('::1') && isLoopback('localhost')).toBe(true);
    expect(isLoopback('0.0.0.0')).toBe(false);
  });

  it('reports a port held by a listener and a free one', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    expect(await portProblem('127.0.0.1', port)).toMatch(/in use/);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await portProblem('127.0.0.1', port)).toBeNull();
    expect(await portProblem('192.0.2.1', port)).toMatch(/not on this machine/);
  });

  it('recognizes a process by executable name and marker only', () => {
    expect(ownsProcess({ executable: 'node', marker: '' }, process.pid)).toBe(true);
    expect(ownsProcess({ executable: 'node', marker: '/no/such/marker' }, process.pid)).toBe(false);
    expect(ownsProcess({ executable: 'redis-server', marker: '' }, process.pid)).toBe(false);
  });

  it('can also require the working directory (Redis instances differ only there)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mprism-unit-'));
    const child = spawn('sleep', ['10'], { cwd: dir });
    try {
      await new Promise((resolve) => child.once('spawn', resolve));
      const pid = child.pid as number;
      expect(ownsProcess({ executable: 'sleep', marker: '10', cwd: dir }, pid)).toBe(true);
      expect(ownsProcess({ executable: 'sleep', marker: '10', cwd: tmpdir() }, pid)).toBe(false);
      expect(ownsProcess({ executable: 'sleep', marker: '10', cwd: join(dir, 'gone') }, pid)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
