import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * A named lease with fencing in Redis: at most one holder per name at a time, each holding under a
 * token (the fence) larger than every token issued for that name before. Used by the brain (one
 * leader) and by replication (one copier per table), so these run in one place across machines.
 */

/** The two keys of one lease: who holds it (`<fence> <holderId>`, with a ttl), and its fence counter. */
export interface LeaseKeys {
  lease: string;
  fence: string;
}

const LEASE_PREFIX = 'mprism:lease:';
const FENCE_SUFFIX = ':fence';

/** Keys of the lease `name`: `mprism:lease:<name>` and its own fence counter. */
export function leaseKeys(name: string): LeaseKeys {
  if (name === '' || /\s/.test(name)) throw new Error(`lease name ${JSON.stringify(name)} must be non-empty without spaces`);
  return { lease: `${LEASE_PREFIX}${name}`, fence: `${LEASE_PREFIX}${name}${FENCE_SUFFIX}` };
}

// Take the lease only when nobody holds it (or, with ARGV[4] = '1', when it is held under our own
// holder id: see reclaimOwn), with a fresh fencing token, in one step. The token is
// above ARGV[3], the newest one work was recorded under elsewhere (PostgreSQL for the brain, cold
// ClickHouse for replication): a Redis that restarted without its data would count from 0 again,
// under the tokens those stores refuse, and no holder could work.
const ACQUIRE = `
local current = redis.call('GET', KEYS[1])
if current then
  if ARGV[4] ~= '1' then return false end
  local space = string.find(current, ' ', 1, true)
  if not space or string.sub(current, space + 1) ~= ARGV[1] then return false end
end
local fence = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if fence <= floor then
  fence = floor + 1
  redis.call('SET', KEYS[2], fence)
end
redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[1], 'PX', ARGV[2])
return fence`;
// Extend it only while it is still ours: an expired lease another holder took is not taken back.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface LeaseHolderInfo {
  holderId: string;
  fence: number;
  expiresInMs: number;
}

/** Who holds the lease now, or null when nobody does. */
export async function readLease(redis: Redis, keys: LeaseKeys): Promise<LeaseHolderInfo | null> {
  const [value, ttl] = await Promise.all([redis.get(keys.lease), redis.pttl(keys.lease)]);
  if (value === null) return null;
  const space = value.indexOf(' ');
  return { fence: Number(value.slice(0, space)), holderId: value.slice(space + 1), expiresInMs: Math.max(0, ttl) };
}

/** Every named lease held now (`mprism:lease:*`), by name: which process runs what, across machines. */
export async function readLeases(redis: Redis): Promise<({ name: string } & LeaseHolderInfo)[]> {
  const names: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${LEASE_PREFIX}*`, 'COUNT', 100);
    cursor = next;
    for (const key of batch) if (!key.endsWith(FENCE_SUFFIX)) names.push(key.slice(LEASE_PREFIX.length));
  } while (cursor !== '0');
  const held = await Promise.all(names.map(async (name) => ({ name, holder: await readLease(redis, leaseKeys(name)) })));
  return held.flatMap(({ name, holder }) => (holder === null ? [] : [{ name, ...holder }])).sort((a, b) => a.name.localeCompare(b.name));
}

// ---- The decisions, pure: what a tick's outcome does to the holder's state. ----

export type LeaseState = { held: false } | { held: true; value: string; fence: number; validUntil: number };

/** What one request to Redis came back with. requestStart: the clock when the request was sent. */
export type LeaseOutcome =
  | { kind: 'acquired'; fence: number; value: string; requestStart: number }
  | { kind: 'renewed'; requestStart: number }
  /** The renewal found the key gone or someone else's: the lease expired and maybe passed on. */
  | { kind: 'taken' }
  /** Redis did not answer: the lease may still be ours, until validUntil. */
  | { kind: 'unreachable' };

export type LeaseChange = { kind: 'acquired'; fence: number } | { kind: 'lost'; reason: string } | null;

/**
 * A holder counts the lease as its own for 2/3 of the ttl from the moment it *sent* the request that
 * set or extended it: Redis started the ttl no earlier, so the key cannot have expired (and been
 * taken by another) before then, whatever the request's latency. The last third is the margin for
 * clock drift between processes and for the holder noticing its own deadline late.
 */
export function holdUntil(requestStart: number, ttlMs: number): number {
  return requestStart + Math.floor((ttlMs * 2) / 3);
}

/** A holder renews, and a standby tries to take the lease, this often. */
export function tickIntervalMs(ttlMs: number): number {
  return Math.max(100, Math.floor(ttlMs / 3));
}

/** `rival` names the other holders in the reason of a loss ("the lease is held by another brain"). */
export function nextLeaseState(state: LeaseState, outcome: LeaseOutcome, ttlMs: number, rival = 'holder'): { state: LeaseState; change: LeaseChange } {
  switch (outcome.kind) {
    case 'acquired':
      return {
        state: { held: true, value: outcome.value, fence: outcome.fence, validUntil: holdUntil(outcome.requestStart, ttlMs) },
        change: state.held && state.fence === outcome.fence ? null : { kind: 'acquired', fence: outcome.fence },
      };
    case 'renewed':
      return state.held ? { state: { ...state, validUntil: holdUntil(outcome.requestStart, ttlMs) }, change: null } : { state, change: null };
    case 'taken':
      return { state: { held: false }, change: state.held ? { kind: 'lost', reason: `the lease is held by another ${rival}` } : null };
    case 'unreachable':
      // Keep holding while the lease surely still holds; the deadline ends it (see expire).
      return { state, change: null };
  }
}

/** At `now`, past validUntil the holder must consider the lease lost, renewal or not. */
export function expire(state: LeaseState, now: number): { state: LeaseState; change: LeaseChange } {
  if (state.held && now >= state.validUntil) return { state: { held: false }, change: { kind: 'lost', reason: 'could not renew the lease in time' } };
  return { state, change: null };
}

/** Held at `now`: by the state and by the clock, even if the deadline timer has not fired yet (a paused process). */
export function holdsAt(state: LeaseState, now: number): boolean {
  return state.held && now < state.validUntil;
}

// ---- The holder: the decisions driven by timers and Redis. ----

/** The store of the fence floor (not Redis) failed: told apart in error(). */
class FenceFloorError extends Error {}

export interface LeaseEvents {
  onAcquired(fence: number): void;
  onLost(reason: string): void;
}

export interface LeaseOptions {
  keys: LeaseKeys;
  /** Names this process in the lease value; no spaces. */
  holderId: string;
  ttlMs: number;
  log: Logger;
  /** In log lines: "took the <label> lease", and "held by another <label>". */
  label: string;
  /** The newest token work was recorded under (see ACQUIRE); a new token is always above it. */
  fenceFloor?: () => Promise<number>;
  /**
   * Take at once, under a new fence, a lease still held under this holderId instead of waiting out
   * its ttl: the previous process in this slot was killed, or this one's renewal failed. Only for a
   * holderId no other live process can have (replication: host and port, which one process binds).
   */
  reclaimOwn?: boolean;
  /** Injectable clock for tests. */
  now?: () => number;
}

/**
 * A holder, or standby, of one lease. The holder renews every ttl/3 and gives the lease up by itself
 * (onLost) at holdUntil of its last successful renewal, before the key can expire: a holder that
 * lost it has stopped before another can take it. A standby tries to take it every ttl/3.
 * Timing can fail (a process paused past its deadline), so whoever records work under the lease also
 * checks the fence where the work is recorded, and refuses work under an older one.
 */
export class Lease {
  private state: LeaseState = { held: false };
  private loop: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  private stopped = false;
  private lastError: string | null = null;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    private readonly opts: LeaseOptions,
    private readonly events: LeaseEvents,
  ) {
    if (/\s/.test(opts.holderId) || opts.holderId === '') throw new Error(`holder id ${JSON.stringify(opts.holderId)} must be non-empty without spaces`);
    this.now = opts.now ?? Date.now;
  }

  get keys(): LeaseKeys {
    return this.opts.keys;
  }

  start(): void {
    const tick = () => {
      this.ticking = this.tick().finally(() => {
        if (!this.stopped) this.loop = setTimeout(tick, tickIntervalMs(this.opts.ttlMs));
      });
    };
    tick();
  }

  /** The fence while this process counts the lease as held (by its state, not the clock), else null. */
  fence(): number | null {
    return this.state.held ? this.state.fence : null;
  }

  /** Held right now by the clock too: check before each step of work, a timer may not have fired yet. */
  holds(): boolean {
    return holdsAt(this.state, this.now());
  }

  /** The last Redis failure, null once a request succeeds again. */
  error(): string | null {
    return this.lastError;
  }

  /** Hands the lease back now, staying a standby that may take it again. */
  async release(): Promise<void> {
    const held = this.state.held ? this.state.value : null;
    this.apply({ state: { held: false }, change: held === null ? null : { kind: 'lost', reason: 'handed back' } });
    if (held !== null) await this.redis.eval(RELEASE, 1, this.opts.keys.lease, held).catch(() => undefined);
  }

  /** Stops trying, and hands the lease back at once when held so a standby need not wait out the ttl. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.loop) clearTimeout(this.loop);
    await this.ticking;
    const held = this.state.held ? this.state.value : null;
    this.apply({ state: { held: false }, change: null });
    if (held !== null) await this.redis.eval(RELEASE, 1, this.opts.keys.lease, held).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const requestStart = this.now();
    const { keys, holderId, ttlMs } = this.opts;
    try {
      if (!this.state.held) {
        const current = await this.redis.get(keys.lease);
        if (current !== null && !(this.opts.reclaimOwn === true && current.slice(current.indexOf(' ') + 1) === holderId)) return void (this.lastError = null);
        let floor = 0;
        try {
          floor = (await this.opts.fenceFloor?.()) ?? 0;
        } catch (err) {
          throw new FenceFloorError(`cannot read the newest fence recorded (${errorMessage(err)})`, { cause: err });
        }
        const fence = await this.redis.eval(ACQUIRE, 2, keys.lease, keys.fence, holderId, String(ttlMs), String(floor), this.opts.reclaimOwn === true ? '1' : '0');
        this.lastError = null;
        if (fence === null) return;
        const value = `${String(fence)} ${holderId}`;
        if (this.stopped) {
          // stop() ran meanwhile and found nothing to hand back: hand this back now.
          await this.redis.eval(RELEASE, 1, keys.lease, value).catch(() => undefined);
          return;
        }
        this.apply(nextLeaseState(this.state, { kind: 'acquired', fence: Number(fence), value, requestStart }, ttlMs));
        return;
      }
      const renewed = await this.redis.eval(RENEW, 1, keys.lease, this.state.value, String(ttlMs));
      this.lastError = null;
      this.apply(nextLeaseState(this.state, renewed === 1 ? { kind: 'renewed', requestStart } : { kind: 'taken' }, ttlMs, this.opts.label));
    } catch (err) {
      const message = err instanceof FenceFloorError ? err.message : `redis: ${errorMessage(err)}`;
      // Logged when it starts or changes, not at every retry of an outage.
      if (message !== this.lastError) this.opts.log.warn({ err: message, holding: this.state.held, lease: keys.lease }, `${this.opts.label} lease: request failed`);
      this.lastError = message;
      this.apply(nextLeaseState(this.state, { kind: 'unreachable' }, ttlMs));
    }
  }

  private apply({ state, change }: { state: LeaseState; change: LeaseChange }): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
    this.state = state;
    if (state.held) {
      const validUntil = state.validUntil;
      this.deadline = setTimeout(() => this.apply(expire(this.state, Math.max(this.now(), validUntil))), Math.max(0, validUntil - this.now()));
    }
    if (change === null) return;
    if (change.kind === 'acquired') {
      this.opts.log.info({ fence: change.fence, lease: this.opts.keys.lease }, `took the ${this.opts.label} lease`);
      this.events.onAcquired(change.fence);
    } else {
      this.opts.log.warn({ reason: change.reason, lease: this.opts.keys.lease }, `lost the ${this.opts.label} lease`);
      this.events.onLost(change.reason);
    }
  }
}

/** mprism_lease_held{name}: 1 while this process holds the lease, 0 while it stands by. */
export function registerLeaseMetric(registry: Registry, leases: () => Iterable<{ name: string; held: boolean }>): Gauge<'name'> {
  return new Gauge({
    name: 'mprism_lease_held',
    help: 'Whether this process holds the named lease (1) or stands by (0)',
    labelNames: ['name'],
    registers: [registry],
    collect() {
      this.reset();
      for (const l of leases()) this.set({ name: l.name }, l.held ? 1 : 0);
    },
  });
}
