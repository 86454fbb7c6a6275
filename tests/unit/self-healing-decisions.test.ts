import { describe, expect, it } from 'vitest';
import { planProcessRepair, type ProcessFacts } from '../../src/lib/checks/repair.js';
import { judgeDaemon, judgeInfra, judgeSupervisor } from '../../src/lib/checks/status.js';
import type { LockState } from '../../src/lib/supervisor/lock.js';
import { infraWanted, platformWanted, type DaemonStatus, type InfraProcessStatus, type SupervisorSnapshot } from '../../src/lib/supervisor/state.js';
import { startAction } from '../../src/lib/supervisor/supervisor.js';

const free: LockState = { state: 'free' };
const live = (pid: number): LockState => ({ state: 'live', info: { name: 'x', pid, startTime: '123', acquiredAt: '' } });
const stale: LockState = { state: 'stale', info: null, reason: 'pid 7 is not running' };

function daemon(over: Partial<DaemonStatus> = {}): DaemonStatus {
  return { name: 'storage', state: 'running', pid: 10, startedAt: 0, restarts: 0, fastFailures: 0, lastExit: null, detail: null, port: 1, wanted: true, ...over };
}
function server(over: Partial<InfraProcessStatus> = {}): InfraProcessStatus {
  return { name: 'nats', state: 'running', pid: 20, startedAt: 0, restarts: 0, fastFailures: 0, lastExit: null, detail: null, wanted: true, ...over };
}
function snapshot(daemons: DaemonStatus[], infra?: InfraProcessStatus[]): SupervisorSnapshot {
  return { pid: 1, startedAt: 0, simulate: false, daemons, ...(infra ? { infra } : {}) };
}

describe('startAction: what a start request does with a daemon', () => {
  it('keeps one of ours that runs and waits for one of ours that is starting', () => {
    expect(startAction({ state: 'running', ownPid: 10 }, live(10), 1)).toEqual({ action: 'keep' });
    expect(startAction({ state: 'starting', ownPid: 10 }, live(10), 1)).toEqual({ action: 'wait' });
  });

  it('adopts a live daemon an earlier supervisor left behind instead of restarting it', () => {
    expect(startAction({ state: 'stopped', ownPid: null }, live(55), 1)).toEqual({ action: 'adopt', pid: 55, startTime: '123' });
    expect(startAction({ state: 'errored', ownPid: null }, live(55), 1)).toMatchObject({ action: 'adopt' });
  });

  it('spawns when nothing holds the lock, or only a dead process does', () => {
    expect(startAction({ state: 'stopped', ownPid: null }, free, 1)).toEqual({ action: 'spawn' });
    expect(startAction({ state: 'backoff', ownPid: null }, stale, 1)).toEqual({ action: 'spawn' });
    // Our own pid in a lock (a test running daemons in-process) is not an orphan.
    expect(startAction({ state: 'stopped', ownPid: null }, live(1), 1)).toEqual({ action: 'spawn' });
  });
});

describe('wanted: platform should run unless stopped', () => {
  it('is wanted while a daemon or server is wanted, not after stop', () => {
    expect(platformWanted(null)).toBe(false);
    expect(platformWanted(snapshot([daemon({ wanted: false })], [server({ wanted: false })]))).toBe(false);
    expect(platformWanted(snapshot([daemon({ wanted: false })], [server()]))).toBe(true);
    expect(platformWanted(snapshot([daemon()]))).toBe(true);
  });

  it('a server is wanted per its own entry; old snapshots without servers imply it from the daemons', () => {
    expect(infraWanted(snapshot([daemon()], [server({ wanted: false })]), 'nats')).toBe(false);
    expect(infraWanted(snapshot([daemon({ wanted: false })], [server()]), 'nats')).toBe(true);
    expect(infraWanted(snapshot([daemon()]), 'redis')).toBe(true);
    expect(infraWanted(snapshot([daemon({ wanted: false })]), 'redis')).toBe(false);
  });
});

describe('status: dead is a process that died without stop', () => {
  it('judges the supervisor', () => {
    expect(judgeSupervisor(true, live(5), true).state).toBe('running');
    expect(judgeSupervisor(false, free, true)).toEqual({ state: 'dead', detail: "died without 'mprism stop'" });
    expect(judgeSupervisor(false, stale, false)).toEqual({ state: 'dead', detail: "died without 'mprism stop' (pid 7 is not running)" });
    expect(judgeSupervisor(false, free, false)).toEqual({ state: 'stopped', detail: null });
    expect(judgeSupervisor(false, live(5), true).state).toBe('unresponsive');
  });

  it('judges a daemon', () => {
    expect(judgeDaemon(daemon({ state: 'backoff', detail: 'x' }), true, free)).toEqual({ state: 'backoff', detail: 'x' });
    expect(judgeDaemon(daemon(), false, live(10))).toEqual({ state: 'running', detail: 'supervisor is not running' });
    expect(judgeDaemon(daemon(), false, free)).toEqual({ state: 'dead', detail: "died without 'mprism stop' (was running)" });
    expect(judgeDaemon(daemon({ wanted: false, state: 'stopped' }), false, free)).toEqual({ state: 'stopped', detail: null });
    expect(judgeDaemon(undefined, false, stale).state).toBe('dead');
  });

  it('judges a local server whether or not its pid file is still there', () => {
    expect(judgeInfra(server(), 20, true, null).state).toBe('running');
    expect(judgeInfra(server({ state: 'backoff', detail: 'died; restarting in 1.0 s' }), null, true, null)).toEqual({ state: 'backoff', detail: 'died; restarting in 1.0 s' });
    expect(judgeInfra(undefined, null, true, null).state).toBe('dead');
    expect(judgeInfra(undefined, null, false, 33)).toEqual({ state: 'dead', detail: 'pid file names dead pid 33' });
    expect(judgeInfra(undefined, null, false, null).state).toBe('stopped');
  });
});

describe('planProcessRepair', () => {
  const base = (over: Partial<ProcessFacts>): ProcessFacts => ({
    supervisor: 'running',
    supervisorDetail: null,
    simulate: true,
    daemons: [
      { name: 'storage', wanted: true, state: 'running', detail: null, livePid: 11 },
      { name: 'collector', wanted: true, state: 'running', detail: null, livePid: 12 },
    ],
    infra: [
      { name: 'nats', wanted: true, up: true },
      { name: 'redis', wanted: true, up: true },
    ],
    ...over,
  });

  it('does nothing for a healthy platform and nothing after stop', () => {
    expect(planProcessRepair(base({})).request).toBeNull();
    const stopped = planProcessRepair(base({ supervisor: 'stopped', infra: [{ name: 'nats', wanted: false, up: false }] }));
    expect(stopped).toMatchObject({ request: null, startInfra: [], startDaemons: [] });
  });

  it('replaces a dead supervisor, adopts the daemons still running and starts the dead ones', () => {
    const plan = planProcessRepair(base({
      supervisor: 'dead',
      supervisorDetail: "died without 'mprism stop'",
      daemons: [
        { name: 'storage', wanted: true, state: 'running', detail: null, livePid: 11 },
        { name: 'collector', wanted: true, state: 'running', detail: null, livePid: null },
        { name: 'brain', wanted: false, state: 'stopped', detail: null, livePid: null },
      ],
      infra: [
        { name: 'nats', wanted: true, up: true },
        { name: 'redis', wanted: true, up: false },
      ],
    }));
    expect(plan.replaceSupervisor).toBe("died without 'mprism stop'");
    expect(plan.adoptDaemons).toEqual([{ name: 'storage', pid: 11 }]);
    expect(plan.startDaemons.map((d) => d.name)).toEqual(['collector']);
    expect(plan.startInfra.map((i) => i.name)).toEqual(['redis']);
    // Every wanted server goes to the new supervisor, which watches the running ones.
    expect(plan.request).toEqual({ names: ['storage', 'collector'], infra: ['nats', 'redis'], simulate: true });
  });

  it('under a live supervisor, starts a server that is down and an errored daemon, never a running one', () => {
    const plan = planProcessRepair(base({
      daemons: [
        { name: 'storage', wanted: true, state: 'running', detail: null, livePid: 11 },
        { name: 'collector', wanted: true, state: 'errored', detail: 'exited 5 times', livePid: null },
        { name: 'replication', wanted: true, state: 'backoff', detail: null, livePid: null },
      ],
      infra: [{ name: 'nats', wanted: true, up: false }],
    }));
    expect(plan.replaceSupervisor).toBeNull();
    expect(plan.startDaemons).toEqual([{ name: 'collector', reason: 'errored: exited 5 times' }]);
    expect(plan.adoptDaemons).toEqual([]);
    expect(plan.request).toEqual({ names: ['collector'], infra: ['nats'], simulate: true });
  });

  it('refuses to act behind a supervisor that holds its lock but does not answer', () => {
    const plan = planProcessRepair(base({ supervisor: 'unresponsive', supervisorDetail: 'pid 5 does not answer' }));
    expect(plan.request).toBeNull();
    expect(plan.blocked).toMatch(/mprism stop/);
  });
});

describe('clearWanted', () => {
  it('records a stop made without the supervisor, so nothing stopped counts as dead', async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { clearWanted, readSnapshot } = await import('../../src/lib/supervisor/state.js');
    const dir = mkdtempSync(join(tmpdir(), 'mprism-state-'));
    try {
      const file = join(dir, 'supervisor-state.json');
      writeFileSync(file, JSON.stringify(snapshot([daemon(), daemon({ name: 'collector' })], [server()])));
      clearWanted(file, ['storage', 'nats']);
      const snap = readSnapshot(file)!;
      expect(snap.daemons.map((d) => [d.name, d.wanted])).toEqual([['storage', false], ['collector', true]]);
      expect(platformWanted(snap)).toBe(true);
      clearWanted(file, ['collector']);
      expect(platformWanted(readSnapshot(file))).toBe(false);
      clearWanted(join(dir, 'missing.json'), ['storage']); // no snapshot: nothing to record
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
