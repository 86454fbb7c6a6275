import type { Redis } from 'ioredis';
import type pg from 'pg';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

/** Who leads, and under which fencing token: `<fence> <brainId>`. */
export const LEASE_KEY = 'mprism:brain:leader';
/** Only ever incremented: each new leadership gets a larger token than every one before it. */
export const FENCE_KEY = 'mprism:brain:fence';

// Take the lease only when nobody holds it, with a fresh fencing token, in one step. The token is
// above ARGV[3], the newest one work was done under (PostgreSQL): a Redis that restarted without
// its data would count from 0 again, under the tokens PostgreSQL refuses, and no brain could work.
const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local fence = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if fence <= floor then
  fence = floor + 1
  redis.call('SET', KEYS[2], fence)
end
redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[1], 'PX', ARGV[2])
return fence`;
// Extend it only while it is still ours: an expired lease another brain took is not taken back.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface LeaderInfo {
  brainId: string;
  fence: number;
  expiresInMs: number;
}

/** The brain holding the lease now, or null when none does. */
export async function readLeader(redis: Redis): Promise<LeaderInfo | null> {
  const [value, ttl] = await Promise.all([redis.get(LEASE_KEY), redis.pttl(LEASE_KEY)]);
  if (value === null) return null;
  const space = value.indexOf(' ');
  return { fence: Number(value.slice(0, space)), brainId: value.slice(space + 1), expiresInMs: Math.max(0, ttl) };
}

export interface LeaseEvents {
  onAcquired(fence: number): void;
  onLost(reason: string): void;
}

export interface LeaseOptions {
  brainId: string;
  ttlMs: number;
  log: Logger;
  /** The newest token work was done under (see fenceFloor); a new token is always above it. */
  fenceFloor?: () => Promise<number>;
  /** Injectable clock for tests. */
  now?: () => number;
}

/**
 * Leadership among brains sharing one Redis. The leader renews every ttl/3. It gives up its
 * leadership by itself (onLost) once 2/3 of the ttl has passed since the start of its last
 * successful renewal: the lease cannot have expired before then, so a brain that lost it has
 * stopped before another can take it. A standby tries to take the lease every ttl/3.
 * The fencing token backs this up where timing cannot: claimFence refuses work under an old token.
 */
export class BrainLease {
  private value: string | null = null;
  private currentFence: number | null = null;
  /** Leadership ends here unless a renewal moves it. */
  private validUntil = 0;
  private loop: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    private readonly opts: LeaseOptions,
    private readonly events: LeaseEvents,
  ) {
    if (/\s/.test(opts.brainId) || opts.brainId === '') throw new Error(`brain id ${JSON.stringify(opts.brainId)} must be non-empty without spaces`);
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    const tick = () => {
      this.ticking = this.tick().finally(() => {
        if (!this.stopped) this.loop = setTimeout(tick, Math.max(100, Math.floor(this.opts.ttlMs / 3)));
      });
    };
    tick();
  }

  isLeader(): boolean {
    return this.currentFence !== null;
  }

  fence(): number | null {
    return this.currentFence;
  }

  /** Hands the lease back now, staying a standby that may take it again. */
  async release(): Promise<void> {
    const held = this.value;
    this.lose('handed back', true);
    if (held !== null) await this.redis.eval(RELEASE, 1, LEASE_KEY, held).catch(() => undefined);
  }

  /** Stops trying, and hands the lease back at once when held so a standby need not wait out the ttl. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.loop) clearTimeout(this.loop);
    await this.ticking;
    const held = this.value;
    this.lose('brain stopping', false);
    if (held !== null) await this.redis.eval(RELEASE, 1, LEASE_KEY, held).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const started = this.now();
    try {
      if (this.value === null) {
        if ((await this.redis.exists(LEASE_KEY)) === 1) return;
        const floor = (await this.opts.fenceFloor?.()) ?? 0;
        const fence = await this.redis.eval(ACQUIRE, 2, LEASE_KEY, FENCE_KEY, this.opts.brainId, String(this.opts.ttlMs), String(floor));
        if (fence === null) return;
        if (this.stopped) {
          // stop() ran meanwhile and found nothing to hand back: hand this back now.
          await this.redis.eval(RELEASE, 1, LEASE_KEY, `${String(fence)} ${this.opts.brainId}`).catch(() => undefined);
          return;
        }
        this.value = `${String(fence)} ${this.opts.brainId}`;
        this.currentFence = Number(fence);
        this.extend(started);
        this.opts.log.info({ fence: this.currentFence }, 'took the brain lease: this brain leads');
        this.events.onAcquired(this.currentFence);
        return;
      }
      const renewed = await this.redis.eval(RENEW, 1, LEASE_KEY, this.value, String(this.opts.ttlMs));
      if (renewed === 1) this.extend(started);
      else this.lose('the lease is held by another brain', true);
    } catch (err) {
      // Redis unreachable: keep leading while the lease surely still holds; the deadline timer ends it.
      this.opts.log.warn({ err: errorMessage(err), leading: this.isLeader() }, 'brain lease: redis request failed');
    }
  }

  private extend(requestStart: number): void {
    this.validUntil = requestStart + Math.floor((this.opts.ttlMs * 2) / 3);
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.lose('could not renew the lease in time', true), Math.max(0, this.validUntil - this.now()));
  }

  private lose(reason: string, notify: boolean): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
    const wasLeader = this.currentFence !== null;
    this.value = null;
    this.currentFence = null;
    if (wasLeader && notify) {
      this.opts.log.warn({ reason }, 'lost the brain lease: this brain stops its jobs');
      this.events.onLost(reason);
    }
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
