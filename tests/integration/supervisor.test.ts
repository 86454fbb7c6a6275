import { mkdirSync } from 'node:fs';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../src/lib/paths.js';
import { isAlive } from '../../src/lib/process-util.js';
import { readSnapshot } from '../../src/lib/supervisor/state.js';
import { Supervisor } from '../../src/lib/supervisor/supervisor.js';
import { eventually } from '../helpers/cli.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * The supervisor against real daemon processes (the built dist/): a daemon that cannot start
 * (its NATS is unreachable) is restarted with backoff and then left `errored`, not crash-looped.
 */
let infra: TestInfra;
beforeAll(async () => {
  const deadNats = await freePort();
  infra = await startTestInfra({
    servers: ['redis'],
    overrides: {
      nats: { url: `nats://127.0.0.1:${deadNats}` },
      supervisor: { initialBackoffMs: 100, maxBackoffMs: 400, maxFastFailures: 3, stableAfterMs: 20_000, healthTimeoutMs: 10_000 },
    },
  });
  mkdirSync(homePaths(infra.home).run, { recursive: true });
});
afterAll(async () => {
  await infra.stop();
});

describe('supervisor', () => {
  it('restarts a failing daemon with backoff, then marks it errored and stops retrying', async () => {
    const sup = new Supervisor(infra.config, pino({ level: 'silent' }));
    const result = await sup.start(['storage'], false);
    expect(result.ok).toBe(false);
    expect(result.failed[0]?.name).toBe('storage');
    const errored = await eventually('storage errored', async () => {
      const d = sup.snapshot().daemons.find((x) => x.name === 'storage')!;
      return d.state === 'errored' ? d : null;
    }, 20_000, 100);
    expect(errored.restarts).toBe(2); // three spawns: the first and two restarts
    expect(errored.fastFailures).toBe(3);
    expect(errored.detail).toMatch(/exited 3 times in a row .* not restarting/);
    expect(errored.lastExit?.code).toBe(1);
    // It stays errored: no further spawn after the give-up.
    await new Promise((r) => setTimeout(r, 1000));
    expect(sup.snapshot().daemons.find((x) => x.name === 'storage')).toMatchObject({ state: 'errored', restarts: 2, pid: null });
    // The persisted snapshot (read by `status` when the supervisor is down) says the same.
    expect(readSnapshot(homePaths(infra.home).supervisorState)?.daemons.find((x) => x.name === 'storage')?.state).toBe('errored');
    await sup.shutdown(5000);
  });

  it('stops a running daemon with SIGTERM in reverse order and leaves no process', async () => {
    const sup = new Supervisor(infra.config, pino({ level: 'silent' }));
    // The simulator needs no NATS, so it starts and becomes healthy.
    const result = await sup.start(['simulator'], true);
    expect(result.ok).toBe(true);
    const pid = sup.snapshot().daemons.find((x) => x.name === 'simulator')!.pid!;
    expect(isAlive(pid)).toBe(true);
    await sup.shutdown(5000);
    expect(isAlive(pid)).toBe(false);
    expect(sup.snapshot().daemons.every((d) => d.state === 'stopped')).toBe(true);
  });
});
