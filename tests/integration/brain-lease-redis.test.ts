import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pg from 'pg';
import pino from 'pino';
import { ensureBrainSchema } from '../../src/lib/brain/schema.js';
import { BrainLease, claimFence, readLeader, recordedFence } from '../../src/lib/brain/lease.js';
import { postgresUrl, redisUrl } from '../../src/lib/infra/endpoints.js';
import { ensurePostgresDatabase } from '../../src/lib/infra/probe.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

let infra: TestInfra;
const log = pino({ level: 'silent' });

beforeAll(async () => {
  infra = await startTestInfra({ servers: ['redis', 'postgres'] });
});
afterAll(async () => {
  await infra?.stop();
});

const until = async (what: string, probe: () => boolean, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** A lease with its events recorded as they happen. */
function lease(redis: Redis, brainId: string, ttlMs: number) {
  const events: string[] = [];
  const l = new BrainLease(redis, { brainId, ttlMs, log }, { onAcquired: (f) => events.push(`acquired ${f}`), onLost: (r) => events.push(`lost: ${r}`) });
  return { l, events };
}

describe('brain lease (real Redis)', () => {
  it('one leader at a time; a standby takes over with a larger fence once the leader stops, or lapses', async () => {
    const redis = new Redis(redisUrl(infra.config));
    const a = lease(redis, 'brain-a', 600);
    const b = lease(redis, 'brain-b', 600);
    try {
      a.l.start();
      await until('a leads', () => a.l.isLeader());
      b.l.start();
      // Several renewals pass: a keeps the lease, b never leads.
      await new Promise((r) => setTimeout(r, 1500));
      expect(a.l.isLeader()).toBe(true);
      expect(b.l.isLeader()).toBe(false);
      const first = a.l.fence()!;
      expect(await readLeader(redis)).toMatchObject({ brainId: 'brain-a', fence: first });

      // Stopping hands the lease back: b leads within one retry interval, not after the ttl.
      await a.l.stop();
      await until('b leads', () => b.l.isLeader(), 1000);
      expect(b.l.fence()!).toBeGreaterThan(first);
      expect(a.events).toEqual([`acquired ${first}`]);

      // Deleting the key behind b's back (another brain's lease expired into a new one): b notices at
      // its next renewal and reports the loss.
      await redis.set('mprism:brain:leader', `999999 brain-c`, 'PX', 5000);
      await until('b lost', () => !b.l.isLeader(), 1000);
      expect(b.events.at(-1)).toBe('lost: the lease is held by another brain');
    } finally {
      await a.l.stop();
      await b.l.stop();
      redis.disconnect();
    }
  });

  it('a leader that cannot reach Redis gives up before its lease can expire', async () => {
    const redis = new Redis(redisUrl(infra.config), { maxRetriesPerRequest: 0, enableOfflineQueue: false });
    const probe = new Redis(redisUrl(infra.config));
    const a = lease(redis, 'brain-a', 900);
    try {
      await probe.del('mprism:brain:leader');
      a.l.start();
      await until('a leads', () => a.l.isLeader());
      redis.disconnect(); // every renewal now fails
      const lostAt = Date.now();
      await until('a gives up', () => !a.l.isLeader(), 2000);
      // It stops before the key lapses in Redis: the key is still there when a has given up.
      expect(await probe.pttl('mprism:brain:leader')).toBeGreaterThan(0);
      expect(Date.now() - lostAt).toBeLessThan(900);
      expect(a.events.at(-1)).toBe('lost: could not renew the lease in time');
    } finally {
      await a.l.stop();
      probe.disconnect();
    }
  });

  it('after Redis lost its data (a restart without persistence), a new token is still above the newest PostgreSQL recorded', async () => {
    await ensurePostgresDatabase(infra.config);
    const pool = new pg.Pool({ connectionString: postgresUrl(infra.config) });
    const redis = new Redis(redisUrl(infra.config));
    try {
      await ensureBrainSchema(pool);
      expect(await claimFence(pool, 40, 'brain-x')).toBe(true);
      await redis.flushall(); // the fence counter starts again from 0
      const events: number[] = [];
      const l = new BrainLease(redis, { brainId: 'brain-y', ttlMs: 600, log, fenceFloor: () => recordedFence(pool) }, { onAcquired: (f) => events.push(f), onLost: () => undefined });
      l.start();
      await until('y leads', () => l.isLeader());
      expect(l.fence()).toBe(41);
      expect(await claimFence(pool, l.fence()!, 'brain-y')).toBe(true);
      await l.stop();
      // Without the floor it would have been token 1, refused: no brain could have run anything.
      expect(await claimFence(pool, 1, 'brain-z')).toBe(false);
    } finally {
      redis.disconnect();
      await pool.end();
    }
  });

  it('claimFence refuses a token older than one already acted under', async () => {
    await ensurePostgresDatabase(infra.config);
    const pool = new pg.Pool({ connectionString: postgresUrl(infra.config) });
    try {
      await ensureBrainSchema(pool);
      await pool.query('DELETE FROM brain_fence');
      expect(await claimFence(pool, 5, 'brain-a')).toBe(true);
      expect(await claimFence(pool, 5, 'brain-a')).toBe(true);
      expect(await claimFence(pool, 7, 'brain-b')).toBe(true);
      expect(await claimFence(pool, 5, 'brain-a')).toBe(false);
      const row = await pool.query('SELECT fence, brain_id FROM brain_fence');
      expect(row.rows).toEqual([{ fence: '7', brain_id: 'brain-b' }]);
    } finally {
      await pool.end();
    }
  });
});
