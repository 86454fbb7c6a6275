import { Redis } from 'ioredis';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRAIN_LEASE_KEYS } from '../../src/lib/brain/lease.js';
import { Lease, leaseKeys, readLease, readLeases, registerLeaseMetric } from '../../src/lib/coordination/lease.js';
import { redisUrl } from '../../src/lib/infra/endpoints.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/** The shared lease module on a real Redis: names are independent, fences only grow. */
let infra: TestInfra;
let redis: Redis;
const log = pino({ level: 'silent' });

beforeAll(async () => {
  infra = await startTestInfra({ servers: ['redis'] });
  redis = new Redis(redisUrl(infra.config));
});
afterAll(async () => {
  redis?.disconnect();
  await infra?.stop();
});

const until = async (what: string, probe: () => boolean, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

function lease(name: string, holderId: string, opts: { ttlMs?: number; fenceFloor?: () => Promise<number>; now?: () => number; reclaimOwn?: boolean } = {}) {
  const events: string[] = [];
  const l = new Lease(
    redis,
    { keys: leaseKeys(name), holderId, ttlMs: opts.ttlMs ?? 600, log, label: 'test', fenceFloor: opts.fenceFloor, now: opts.now, reclaimOwn: opts.reclaimOwn },
    { onAcquired: (f) => events.push(`acquired ${f}`), onLost: (r) => events.push(`lost: ${r}`) },
  );
  return { l, events };
}

describe('named leases (real Redis)', () => {
  it('each name has its own holder and fence counter; the brain keeps its own keys', async () => {
    const a = lease('replication:trades', 'host-a');
    const b = lease('replication:orderbooks', 'host-b');
    const c = lease('replication:trades', 'host-c');
    a.l.start();
    await until('a holds trades', () => a.l.holds());
    b.l.start();
    c.l.start();
    await until('b holds orderbooks', () => b.l.holds());
    await new Promise((r) => setTimeout(r, 700));
    expect([a.l.holds(), b.l.holds(), c.l.holds()]).toEqual([true, true, false]);
    expect(await readLease(redis, leaseKeys('replication:trades'))).toMatchObject({ holderId: 'host-a', fence: 1 });
    expect(await readLease(redis, leaseKeys('replication:orderbooks'))).toMatchObject({ holderId: 'host-b', fence: 1 });
    expect(await redis.exists(BRAIN_LEASE_KEYS.lease, BRAIN_LEASE_KEYS.fence)).toBe(0);
    // What `mprism status` lists: every lease held, by name, not the fence counters.
    expect((await readLeases(redis)).map((l) => [l.name, l.holderId, l.fence])).toEqual([
      ['replication:orderbooks', 'host-b', 1],
      ['replication:trades', 'host-a', 1],
    ]);

    const metrics = new Registry();
    registerLeaseMetric(metrics, () => [
      { name: 'replication:trades', held: a.l.holds() },
      { name: 'replication:orderbooks', held: c.l.holds() },
    ]);
    const text = await metrics.metrics();
    expect(text).toContain('mprism_lease_held{name="replication:trades"} 1');
    expect(text).toContain('mprism_lease_held{name="replication:orderbooks"} 0');

    await a.l.stop();
    await until('c takes trades over', () => c.l.holds(), 1000);
    expect(c.events).toEqual(['acquired 2']);
    await Promise.all([b.l.stop(), c.l.stop()]);
    expect(await readLease(redis, leaseKeys('replication:trades'))).toBeNull();
  });

  it('after Redis lost its data, a new fence is still above the newest one recorded elsewhere', async () => {
    await redis.flushall();
    const d = lease('replication:trades', 'host-d', { fenceFloor: async () => 41 });
    d.l.start();
    await until('d holds', () => d.l.holds());
    expect(d.l.fence()).toBe(42);
    await d.l.stop();
  });

  it('a holder whose clock passed its deadline does not hold, even before its timer fires', async () => {
    let skew = 0;
    const e = lease('replication:funding_rates', 'host-e', { ttlMs: 3000, now: () => Date.now() + skew });
    e.l.start();
    await until('e holds', () => e.l.holds());
    // As after a pause of the process: the clock jumped past 2/3 of the ttl, no timer has run yet.
    skew = 2_100;
    expect(e.l.fence()).not.toBeNull();
    expect(e.l.holds()).toBe(false);
    await e.l.stop();
  });

  it('with reclaimOwn, a restarted holder takes back at once, under a new fence, what its killed predecessor held; others still wait', async () => {
    const keys = leaseKeys('replication:liquidations');
    // Left by a daemon killed with SIGKILL: its value, 10 s to live.
    await redis.set(keys.fence, '7');
    await redis.set(keys.lease, '7 host-f:8086', 'PX', 10_000);
    const other = lease('replication:liquidations', 'host-g:8086', { reclaimOwn: true });
    other.l.start();
    const restarted = lease('replication:liquidations', 'host-f:8086', { reclaimOwn: true });
    restarted.l.start();
    await until('the restarted holder reclaims', () => restarted.l.holds(), 1000);
    expect(restarted.l.fence()).toBe(8);
    expect(await readLease(redis, keys)).toMatchObject({ holderId: 'host-f:8086', fence: 8 });
    await new Promise((r) => setTimeout(r, 500));
    expect(other.l.holds()).toBe(false);
    // Without reclaimOwn (the brain: its id names the process), a key under the same id is waited out.
    await restarted.l.stop();
    await other.l.stop();
    await redis.set(keys.lease, '9 host-h', 'PX', 10_000);
    const plain = lease('replication:liquidations', 'host-h');
    plain.l.start();
    await new Promise((r) => setTimeout(r, 500));
    expect(plain.l.holds()).toBe(false);
    await plain.l.stop();
  });
});
