import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from '../log.js';
import { Lease, readLease, type LeaseEvents, type LeaseKeys } from '../coordination/lease.js';

/**
 * The brain's lease keeps the key names it had before leases were generalized (not
 * `mprism:lease:brain`): brains of both versions, during a rolling upgrade, must contend for one key.
 */
export const BRAIN_LEASE_KEYS: LeaseKeys = {
  /** Who leads, and under which fencing token: `<fence> <brainId>`. */
  lease: 'mprism:brain:leader',
  /** Only ever incremented: each new leadership gets a larger token than every one before it. */
  fence: 'mprism:brain:fence',
};

export interface LeaderInfo {
  brainId: string;
  fence: number;
  expiresInMs: number;
}

/** The brain holding the lease now, or null when none does. */
export async function readLeader(redis: Redis): Promise<LeaderInfo | null> {
  const l = await readLease(redis, BRAIN_LEASE_KEYS);
  return l === null ? null : { brainId: l.holderId, fence: l.fence, expiresInMs: l.expiresInMs };
}

export interface BrainLeaseOptions {
  brainId: string;
  ttlMs: number;
  log: Logger;
  /** The newest token work was done under (see recordedFence); a new token is always above it. */
  fenceFloor?: () => Promise<number>;
  /** Injectable clock for tests. */
  now?: () => number;
}

/**
 * Leadership among brains sharing one Redis: the shared lease (coordination/lease.ts) under the
 * brain's keys. The fencing token backs timing up: claimFence refuses work under an old token.
 */
export class BrainLease extends Lease {
  constructor(redis: Redis, opts: BrainLeaseOptions, events: LeaseEvents) {
    super(redis, { keys: BRAIN_LEASE_KEYS, holderId: opts.brainId, ttlMs: opts.ttlMs, log: opts.log, label: 'brain', fenceFloor: opts.fenceFloor, now: opts.now }, events);
  }

  isLeader(): boolean {
    return this.fence() !== null;
  }
}

/**
 * Records `fence` as the newest token a brain acts under, unless a newer one was recorded: false
 * then, and the caller (a brain whose lease has passed on) must not start the work.
 */
export async function claimFence(pool: pg.Pool, fence: number, brainId: string): Promise<boolean> {
  const res = await pool.query(
    `INSERT INTO brain_fence (id, fence, brain_id) VALUES (1, $1, $2)
     ON CONFLICT (id) DO UPDATE SET fence = EXCLUDED.fence, brain_id = EXCLUDED.brain_id, updated_at = now()
      WHERE brain_fence.fence <= EXCLUDED.fence`,
    [fence, brainId],
  );
  return (res.rowCount ?? 0) === 1;
}

/** The newest token work was done under, from PostgreSQL (0 before any). */
export async function recordedFence(pool: pg.Pool): Promise<number> {
  const res = await pool.query<{ fence: string }>('SELECT fence FROM brain_fence WHERE id = 1');
  return res.rows[0] === undefined ? 0 : Number(res.rows[0].fence);
}
