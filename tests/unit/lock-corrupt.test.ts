import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LockHeldError } from '../../src/lib/errors.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { acquireLock, inspectLock } from '../../src/lib/supervisor/lock.js';
import { listeningPid, parseListeningInodes } from '../../src/lib/supervisor/port-owner.js';
import { waitFor } from '../../src/lib/process-util.js';

let dir: string;
let lockFile: string;
let pidFile: string;
const children: ChildProcess[] = [];
const servers: Server[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mprism-lock-corrupt-'));
  lockFile = join(dir, 'storage.lock');
  pidFile = join(dir, 'storage.pid');
  writeFileSync(lockFile, '{"name":"stor');
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const s of servers.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listen(port: number): Promise<void> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
}

/** A process whose command line reads like a daemon's (`.../daemons/main.js storage`), listening on port. */
async function fakeDaemon(port: number): Promise<number> {
  const script = join(dir, 'daemons', 'main.js');
  mkdirSync(join(dir, 'daemons'), { recursive: true });
  writeFileSync(script, `require('node:net').createServer().listen(${port}, '127.0.0.1');`);
  const child = spawn(process.execPath, [script, 'storage'], { stdio: 'ignore' });
  children.push(child);
  await waitFor(() => listeningPid(port) === child.pid, { timeoutMs: 10_000, what: 'fake daemon listening' });
  return child.pid!;
}

describe('/proc/net/tcp', () => {
  it('finds the inodes of sockets listening on a port, not of connections to it', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1F95 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15340 1 0 100 0 0 10 0',
      '   1: 0100007F:1F95 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 16496 1 0 20 4 30 10 -1',
      '   2: 0100007F:1F96 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 16500 1 0 100 0 0 10 0',
    ].join('\n');
    expect(parseListeningInodes(text, 8085)).toEqual(['15340']);
    expect(parseListeningInodes(text, 8087)).toEqual([]);
  });

  it('names the process listening on a port', async () => {
    const port = await freePort();
    expect(listeningPid(port)).toBeNull();
    await listen(port);
    expect(listeningPid(port)).toBe(process.pid);
  });
});

describe('a corrupt lock file', () => {
  it('is stale without hints, or when nothing of its daemon is alive', async () => {
    expect(inspectLock(lockFile)).toEqual({ state: 'stale', info: null, reason: 'corrupt lock file' });
    const port = await freePort();
    writeFileSync(pidFile, `${process.pid}\n`);
    // alive but not listening on the daemon's port: the pid may have been reused
    expect(inspectLock(lockFile, { pidFile, port, command: 'daemons/main.js storage' }).state).toBe('stale');
  });

  it('is live when the pid from the pid file is alive and listening on the daemon port', async () => {
    const port = await freePort();
    await listen(port);
    writeFileSync(pidFile, `${process.pid}\n`);
    const state = inspectLock(lockFile, { pidFile, port, command: 'daemons/main.js storage' });
    expect(state).toMatchObject({ state: 'live', info: { name: 'storage', pid: process.pid } });
    expect(state.state === 'live' && state.corrupt).toBe(`corrupt lock file, but pid ${process.pid} from its pid file is alive and listening on port ${port}`);
  });

  it('is live when, with no usable pid file, the process on the daemon port runs the daemon', async () => {
    const port = await freePort();
    const pid = await fakeDaemon(port);
    writeFileSync(pidFile, 'garbage\n');
    expect(inspectLock(lockFile, { pidFile, port, command: 'daemons/main.js storage' })).toMatchObject({
      state: 'live', info: { pid }, corrupt: `corrupt lock file, but pid ${pid} is listening on port ${port}`,
    });
    // another program on the port is not the daemon
    expect(inspectLock(lockFile, { pidFile, port, command: 'daemons/main.js collector' }).state).toBe('stale');
  });

  it('of a live daemon is not taken over by a second instance', async () => {
    const port = await freePort();
    const pid = await fakeDaemon(port);
    expect(() => acquireLock(lockFile, 'storage', process.pid, { pidFile, port, command: 'daemons/main.js storage' })).toThrow(LockHeldError);
    expect(() => acquireLock(lockFile, 'storage', process.pid, { pidFile, port, command: 'daemons/main.js storage' })).toThrow(`pid ${pid}`);
  });

  it('of a holder without a port (the supervisor) is live while its pid file names a process running its command', () => {
    const sup = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(sup);
    writeFileSync(pidFile, `${sup.pid}\n`);
    expect(inspectLock(lockFile, { pidFile, command: 'sleep 30' })).toMatchObject({ state: 'live', info: { pid: sup.pid } });
    expect(inspectLock(lockFile, { pidFile, command: 'daemons/supervisor/main.js' }).state).toBe('stale');
  });
});
