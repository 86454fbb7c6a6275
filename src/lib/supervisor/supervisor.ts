import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { backoffDelay, sleep } from '../backoff.js';
import type { Config } from '../config/schema.js';
import { daemonPort } from '../daemon-runner.js';
import { errorMessage } from '../errors.js';
import { isExternal } from '../infra/endpoints.js';
import { startCompanions, startLocalServer } from '../infra/local-servers.js';
import { findServerPid } from '../infra/server-spec.js';
import { companionSpecs, localServerSpec } from '../infra/specs.js';
import type { Logger } from '../log.js';
import { DAEMON_NAMES, INFRA_NAMES, activeDaemons, activeInfra, homePaths, type DaemonName, type InfraName } from '../paths.js';
import { isAlive, processStartTime, writeFileAtomic } from '../process-util.js';
import { inspectHomeLock, type LockState } from './lock.js';
import { fetchDaemonHealth } from '../daemon-health.js';
import { daemonArgs } from './daemon-command.js';
import { procStats } from './proc-stats.js';
import { copyTruncateIfLarger } from './rotating-log.js';
import type { DaemonState, DaemonStatus, InfraProcessStatus, SupervisorSnapshot } from './state.js';

/** Daemons whose behaviour depends on simulate mode (the collector's exchange URLs). */
const SIMULATE_AWARE: ReadonlySet<DaemonName> = new Set(['collector']);

export type RestartDecision = { action: 'restart'; delayMs: number; fastFailures: number } | { action: 'give-up'; fastFailures: number };

/**
 * After an unexpected exit: an exit after stableAfterMs of uptime starts the count afresh (and the
 * backoff at its initial delay); maxFastFailures quick exits in a row mean a crash loop: give up.
 */
export function restartDecision(
  fastFailuresBefore: number,
  uptimeMs: number,
  policy: Pick<Config['supervisor'], 'stableAfterMs' | 'maxFastFailures' | 'initialBackoffMs' | 'maxBackoffMs'>,
  random: () => number = Math.random,
): RestartDecision {
  const fastFailures = uptimeMs >= policy.stableAfterMs ? 0 : fastFailuresBefore + 1;
  if (fastFailures >= policy.maxFastFailures) return { action: 'give-up', fastFailures };
  const delayMs = backoffDelay(Math.max(0, fastFailures - 1), { initialMs: policy.initialBackoffMs, maxMs: policy.maxBackoffMs, jitter: 0.1 }, random);
  return { action: 'restart', delayMs, fastFailures };
}


export type StartAction = { action: 'keep' } | { action: 'wait' } | { action: 'adopt'; pid: number; startTime: string | null } | { action: 'spawn' };

/**
 * What a start request does with one daemon. A daemon whose lock is held by a live process that
 * is not ours was left running by a supervisor that died: it is adopted, never restarted, since a
 * restart of a healthy daemon only risks its in-flight data.
 */
export function startAction(current: { state: DaemonState; ownPid: number | null }, lock: LockState, selfPid: number): StartAction {
  if (current.ownPid !== null && current.state === 'running') return { action: 'keep' };
  if (current.ownPid !== null && current.state === 'starting') return { action: 'wait' };
  if (lock.state === 'live' && lock.info.pid !== selfPid && lock.info.pid !== current.ownPid) {
    return { action: 'adopt', pid: lock.info.pid, startTime: lock.info.startTime };
  }
  return { action: 'spawn' };
}

/** A daemon process this supervisor answers for: its own child, or one adopted from a dead supervisor. */
interface Proc {
  pid: number;
  adopted: boolean;
  /** Resolves once the exit has been seen and handled. */
  exited: Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

interface Managed extends DaemonStatus {
  proc: Proc | null;
  restartTimer: NodeJS.Timeout | null;
  simulate: boolean;
}

interface ManagedInfra extends InfraProcessStatus {
  timer: NodeJS.Timeout | null;
  /** /proc start time of pid: a reused pid is not our server. */
  startTime: string | null;
  /** A start under way (restart after a crash, or a request). */
  pending: Promise<unknown> | null;
}

export type ProcessName = DaemonName | InfraName;

export interface StartResult {
  ok: boolean;
  daemons: DaemonStatus[];
  infra: InfraProcessStatus[];
  /** What the request did with each process it named; `running`: nothing, it already ran. */
  actions: { name: ProcessName; action: 'started' | 'adopted' | 'running' }[];
  failed: { name: ProcessName; reason: string }[];
}

/** MPRISM_SIMULATE of a running daemon, from its environment (null when unreadable). */
function simulateOf(pid: number): boolean | null {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return env.includes('MPRISM_SIMULATE=1');
  } catch {
    return null;
  }
}

/**
 * Spawns the daemons, gates each start on its /health, restarts a daemon that dies with capped
 * exponential backoff (reset after stable uptime) and gives up (state `errored`) after
 * maxFastFailures exits in a row that each came too soon. Local servers asked for by a start are
 * watched the same way: one that dies is started again under the same rules.
 */
export class Supervisor {
  private readonly daemons = new Map<DaemonName, Managed>();
  private readonly infra = new Map<InfraName, ManagedInfra>();
  private readonly paths;
  private simulate = false;
  private logTimer: NodeJS.Timeout | null = null;
  private readonly watchTimer: NodeJS.Timeout;
  /** Set by shutdown(): a start still walking its list must not spawn anything more. */
  private shuttingDown = false;
  /** Start, stop and shutdown requests run one after another (cron repair and a user may overlap). */
  private operations: Promise<unknown> = Promise.resolve();
  private readonly startedAt = Date.now();
  private readonly watchIntervalMs: number;
  /** Replicated tiers whose companions (ZooKeeper, other replicas) are being started again, and when that last failed. */
  private readonly companionStarts = new Map<InfraName, { running: boolean; failedAt: number | null }>();

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    opts: { watchIntervalMs?: number } = {},
  ) {
    this.paths = homePaths(config.home);
    this.watchIntervalMs = opts.watchIntervalMs ?? 1000;
    // Storage instances beyond storage.instances are not in use: a request naming one is ignored like an unknown name.
    for (const name of activeDaemons(config)) {
      this.daemons.set(name, {
        name, state: 'stopped', pid: null, startedAt: null, restarts: 0, fastFailures: 0, lastExit: null,
        detail: null, port: daemonPort(config, name), wanted: false, adopted: false, proc: null, restartTimer: null, simulate: false,
      });
    }
    for (const name of activeInfra(config)) {
      if (isExternal(config, name)) continue;
      this.infra.set(name, {
        name, state: 'stopped', pid: null, startedAt: null, restarts: 0, fastFailures: 0, lastExit: null, detail: null,
        wanted: false, timer: null, startTime: null, pending: null,
      });
    }
    // Local servers are not our children: their death is only seen by looking.
    this.watchTimer = setInterval(() => this.checkInfra(), this.watchIntervalMs);
    this.watchTimer.unref();
  }

  snapshot(): SupervisorSnapshot {
    return {
      pid: process.pid,
      startedAt: this.startedAt,
      simulate: this.simulate,
      daemons: [...this.daemons.values()].map(({ proc: _p, restartTimer: _t, simulate: _s, ...status }) => status),
      infra: [...this.infra.values()].map(({ timer: _t, startTime: _s, pending: _p, ...status }) => status),
    };
  }

  /**
   * Local servers first (started, or watched when already up), then daemons in dependency order,
   * each gated on its health; stops at the first that does not come up.
   */
  start(names: readonly DaemonName[], simulate: boolean, infra: readonly InfraName[] = []): Promise<StartResult> {
    return this.serialize(() => this.doStart(names, simulate, infra));
  }

  /** Stop in reverse dependency order: SIGTERM, then SIGKILL after timeoutMs. Named servers are no longer watched (the caller stops them). */
  stop(names: readonly DaemonName[], timeoutMs: number, infra: readonly InfraName[] = []): Promise<void> {
    return this.serialize(async () => {
      this.unwatch(infra);
      await this.doStop(names, timeoutMs);
    });
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.operations.then(op, op);
    this.operations = run.catch(() => undefined);
    return run;
  }

  private result(actions: StartResult['actions'], failed: StartResult['failed']): StartResult {
    const snap = this.snapshot();
    return { ok: failed.length === 0, daemons: snap.daemons, infra: snap.infra ?? [], actions, failed };
  }

  private async doStart(names: readonly DaemonName[], simulate: boolean, infraNames: readonly InfraName[]): Promise<StartResult> {
    // Simulate mode is sticky for the supervisor's life: `start storage` later must not switch the
    // collector to the real exchanges. Leaving simulate mode takes a stop.
    if (simulate) this.simulate = true;
    const actions: StartResult['actions'] = [];
    const failed: StartResult['failed'] = [];
    for (const name of INFRA_NAMES.filter((n) => infraNames.includes(n))) {
      const i = this.infra.get(name);
      if (!i) continue; // external: nothing of ours to start or watch
      if (this.shuttingDown) {
        failed.push({ name, reason: 'supervisor is shutting down' });
        return this.result(actions, failed);
      }
      i.wanted = true;
      if (i.timer) clearTimeout(i.timer);
      i.timer = null;
      if (i.pending) await i.pending.catch(() => undefined);
      if (i.state === 'running' && this.infraAlive(i)) {
        actions.push({ name, action: 'running' });
        continue;
      }
      i.fastFailures = 0;
      const up = this.bringUpInfra(i);
      i.pending = up;
      try {
        actions.push({ name, action: await up });
      } catch (err) {
        i.state = 'errored';
        i.detail = errorMessage(err);
        this.persist();
        failed.push({ name, reason: i.detail });
        return this.result(actions, failed);
      } finally {
        i.pending = null;
      }
    }
    for (const name of DAEMON_NAMES.filter((n) => names.includes(n))) {
      if (this.shuttingDown) {
        failed.push({ name, reason: 'supervisor is shutting down' });
        break;
      }
      const d = this.daemons.get(name);
      if (!d) {
        failed.push({ name, reason: `not in use here: storage.instances is ${this.config.storage.instances}` });
        break;
      }
      if (d.state === 'running' && SIMULATE_AWARE.has(name) && d.simulate !== this.simulate) {
        this.log.info({ name }, 'restarting to switch to simulate mode');
        await this.doStop([name], 10_000);
      }
      const plan = startAction({ state: d.state, ownPid: d.proc?.pid ?? null }, inspectHomeLock(this.config, name), process.pid);
      if (plan.action === 'keep') {
        actions.push({ name, action: 'running' });
        continue;
      }
      let healthy: boolean;
      if (plan.action === 'wait') {
        healthy = await this.waitHealthy(d, d.proc!);
        actions.push({ name, action: 'started' });
      } else {
        d.wanted = true;
        d.fastFailures = 0;
        // A daemon waiting in backoff is started now; its pending restart must not spawn a second one.
        if (d.restartTimer) clearTimeout(d.restartTimer);
        d.restartTimer = null;
        let proc: Proc;
        if (plan.action === 'adopt' && this.adoptable(d, plan.pid)) {
          proc = this.adopt(d, plan.pid, plan.startTime);
          actions.push({ name, action: 'adopted' });
        } else {
          if (plan.action === 'adopt') {
            // Left running in the other mode: it has to be replaced after all.
            await this.terminateAdopted(d, this.adopt(d, plan.pid, plan.startTime), 15_000);
            d.wanted = true;
          }
          d.simulate = this.simulate;
          proc = this.spawn(d);
          actions.push({ name, action: 'started' });
        }
        healthy = await this.waitHealthy(d, proc);
      }
      if (!healthy) {
        failed.push({ name, reason: d.detail ?? 'did not become healthy' });
        break;
      }
    }
    return this.result(actions, failed);
  }

  /** An orphan can be kept unless it runs in the wrong simulate mode (the collector's exchange URLs). */
  private adoptable(d: Managed, pid: number): boolean {
    if (!SIMULATE_AWARE.has(d.name)) return true;
    return (simulateOf(pid) ?? this.simulate) === this.simulate;
  }

  private async doStop(names: readonly DaemonName[], timeoutMs: number): Promise<void> {
    for (const name of [...DAEMON_NAMES].reverse().filter((n) => names.includes(n))) {
      const d = this.daemons.get(name);
      if (!d) continue; // not in use: nothing of ours runs under that name
      d.wanted = false;
      if (d.restartTimer) clearTimeout(d.restartTimer);
      d.restartTimer = null;
      if (d.proc) await this.terminateAdopted(d, d.proc, timeoutMs);
      d.state = 'stopped';
      d.pid = null;
      d.startedAt = null;
      d.detail = null;
      d.adopted = false;
      this.persist();
    }
  }

  /** SIGTERM, SIGKILL after timeoutMs; resolves once the exit has been handled. Leaves the daemon unwanted. */
  private async terminateAdopted(d: Managed, proc: Proc, timeoutMs: number): Promise<void> {
    d.wanted = false;
    d.state = 'stopping';
    this.persist();
    proc.kill('SIGTERM');
    const inTime = await Promise.race([proc.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!inTime) {
      this.log.warn({ name: d.name, pid: proc.pid, timeoutMs }, 'did not stop in time; killing');
      proc.kill('SIGKILL');
      await proc.exited;
    }
  }

  private unwatch(names: readonly InfraName[]): void {
    for (const name of names) {
      const i = this.infra.get(name);
      if (!i) continue;
      i.wanted = false;
      if (i.timer) clearTimeout(i.timer);
      i.timer = null;
      if (i.state !== 'running') i.state = 'stopped';
    }
    if (names.length > 0) this.persist();
  }

  /**
   * Keeps the logs of the daemons, the local servers, Prometheus (and the supervisor's own stderr) within the
   * size cap, checking every intervalMs while the supervisor runs. Daemons write their own O_APPEND
   * descriptors, so their output outlives this supervisor and reaches the same file after adoption.
   */
  capServerLogs(intervalMs = 30_000): void {
    // A replicated tier's ZooKeeper and other replicas (shared ZooKeeper listed once).
    const companions = new Set(INFRA_NAMES.flatMap((n) => companionSpecs(this.config, n).map((s) => s.name)));
    const files = [...DAEMON_NAMES, ...INFRA_NAMES, ...companions, 'prometheus', 'supervisor.stderr'].map((n) => this.paths.logFile(n));
    const check = () => {
      for (const f of files) {
        try {
          if (copyTruncateIfLarger(f, this.config.logs.maxBytes, this.config.logs.keep)) this.log.info({ file: f }, 'rotated log');
        } catch (err) {
          this.log.warn({ file: f, err: (err as Error).message }, 'could not rotate log');
        }
      }
    };
    check();
    this.logTimer = setInterval(check, intervalMs);
    this.logTimer.unref();
  }

  /** Stops every daemon; local servers are left to the caller (`mprism stop` stops them next), unwatched. */
  async shutdown(timeoutMs: number): Promise<void> {
    this.shuttingDown = true;
    if (this.logTimer) clearInterval(this.logTimer);
    clearInterval(this.watchTimer);
    await this.stop(DAEMON_NAMES, timeoutMs, [...this.infra.keys()]);
  }

  private spawn(d: Managed): Proc {
    mkdirSync(this.paths.logs, { recursive: true });
    const out = openSync(this.paths.logFile(d.name), 'a');
    let child;
    try {
      child = spawn(process.execPath, daemonArgs(d.name, this.config), {
        env: { ...process.env, MPRISM_HOME: this.config.home, ...(this.config.file ? { MPRISM_CONFIG: this.config.file } : {}), MPRISM_SIMULATE: d.simulate ? '1' : '0' },
        stdio: ['ignore', out, out],
      });
    } finally {
      closeSync(out);
    }
    let done!: () => void;
    const proc: Proc = {
      pid: child.pid ?? -1,
      adopted: false,
      exited: new Promise<void>((resolve) => (done = resolve)),
      kill: (signal) => child.kill(signal),
    };
    d.proc = proc;
    d.pid = child.pid ?? null;
    d.startedAt = Date.now();
    d.state = 'starting';
    d.detail = null;
    d.adopted = false;
    this.persist();
    this.log.info({ name: d.name, pid: d.pid }, 'spawned');
    child.once('exit', (code, signal) => {
      this.onExit(d, proc, code, signal);
      done();
    });
    child.once('error', (err) => this.log.error({ name: d.name, err: err.message }, 'spawn failed'));
    return proc;
  }

  /**
   * Takes over a daemon an earlier supervisor left running: it is not our child, so its exit is
   * noticed by polling its pid (with its start time, against pid reuse), and its status is unknown.
   */
  private adopt(d: Managed, pid: number, startTime: string | null): Proc {
    let done!: () => void;
    const proc: Proc = {
      pid,
      adopted: true,
      exited: new Promise<void>((resolve) => (done = resolve)),
      kill: (signal) => {
        try {
          process.kill(pid, signal);
        } catch {
          // already gone; the watch below reports it
        }
      },
    };
    const alive = () => isAlive(pid) && (startTime === null || processStartTime(pid) === startTime);
    const watch = setInterval(() => {
      if (alive()) return;
      clearInterval(watch);
      this.onExit(d, proc, null, null);
      done();
    }, this.watchIntervalMs);
    watch.unref();
    const uptime = procStats(pid)?.uptimeSeconds;
    d.proc = proc;
    d.pid = pid;
    d.startedAt = uptime === undefined ? Date.now() : Date.now() - uptime * 1000;
    d.simulate = simulateOf(pid) ?? this.simulate;
    d.state = 'starting';
    d.detail = 'adopted from a supervisor that died';
    d.adopted = true;
    this.persist();
    this.log.warn({ name: d.name, pid }, 'adopted a daemon left running by an earlier supervisor');
    return proc;
  }

  private onExit(d: Managed, proc: Proc, code: number | null, signal: NodeJS.Signals | null): void {
    if (d.proc !== proc) return;
    d.proc = null;
    d.lastExit = { code, signal, at: Date.now() };
    d.pid = null;
    d.adopted = false;
    if (!d.wanted) return; // stop() owns the state transition
    const how = proc.adopted ? 'adopted process, status unknown' : signal ? `signal ${signal}` : `code ${code}`;
    const decision = restartDecision(d.fastFailures, Date.now() - (d.startedAt ?? Date.now()), this.config.supervisor);
    d.fastFailures = decision.fastFailures;
    if (decision.action === 'give-up') {
      d.state = 'errored';
      d.detail = `exited ${d.fastFailures} times in a row within ${Math.round(this.config.supervisor.stableAfterMs / 1000)} s of starting (last: ${how}); not restarting — see ${this.paths.logFile(d.name)}`;
      this.log.error({ name: d.name, code, signal }, 'errored: too many fast failures');
      this.persist();
      return;
    }
    const delay = decision.delayMs;
    d.state = 'backoff';
    d.detail = `exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s`;
    this.log.warn({ name: d.name, code, signal, delayMs: delay, fastFailures: d.fastFailures }, 'exited unexpectedly; restarting');
    this.persist();
    d.restartTimer = setTimeout(() => {
      d.restartTimer = null;
      if (!d.wanted) return;
      d.restarts++;
      void this.restartDaemon(d);
    }, delay);
  }

  private async restartDaemon(d: Managed): Promise<void> {
    // A daemon restarted while the server it needs is itself restarting would fail fast and use up
    // its fast-failure budget for nothing.
    await this.infraSettled();
    if (!d.wanted || d.proc || this.shuttingDown) return; // stopped, or started by a request, while we waited
    const plan = startAction({ state: d.state, ownPid: null }, inspectHomeLock(this.config, d.name), process.pid);
    const proc = plan.action === 'adopt' ? this.adopt(d, plan.pid, plan.startTime) : this.spawn(d);
    await this.waitHealthy(d, proc);
  }

  /** Waits (bounded) until no wanted local server is between a crash and its restart. */
  private async infraSettled(): Promise<void> {
    const deadline = Date.now() + this.config.supervisor.maxBackoffMs + 60_000;
    const unsettled = () => [...this.infra.values()].some((i) => i.wanted && (i.state === 'backoff' || i.state === 'starting'));
    while (unsettled() && Date.now() < deadline && !this.shuttingDown) await sleep(200);
  }

  private infraAlive(i: ManagedInfra): boolean {
    return i.pid !== null && isAlive(i.pid) && (i.startTime === null || processStartTime(i.pid) === i.startTime);
  }

  private checkInfra(): void {
    for (const i of this.infra.values()) {
      if (i.state === 'running' && !this.infraAlive(i)) this.onInfraExit(i, 'died');
      else if (i.state === 'running') this.checkCompanions(i.name);
    }
  }

  /**
   * A replicated tier's ZooKeeper or second replica can die while its first replica runs: start it
   * again (startCompanions adopts the ones running). After a failed attempt, wait maxBackoffMs
   * before the next, so a companion that cannot start is retried, not crash-looped.
   */
  private checkCompanions(name: InfraName): void {
    const specs = companionSpecs(this.config, name);
    if (specs.length === 0 || this.shuttingDown) return;
    const state = this.companionStarts.get(name) ?? { running: false, failedAt: null };
    if (state.running || (state.failedAt !== null && Date.now() - state.failedAt < this.config.supervisor.maxBackoffMs)) return;
    const dead = specs.filter((spec) => findServerPid(spec) === null).map((spec) => spec.name);
    if (dead.length === 0) return;
    this.companionStarts.set(name, { running: true, failedAt: state.failedAt });
    this.log.warn({ name, companions: dead }, 'companion server down; starting it again');
    startCompanions(this.config, name, (line) => this.log.info({ name }, line)).then(
      () => this.companionStarts.set(name, { running: false, failedAt: null }),
      (err: unknown) => {
        this.log.error({ name, companions: dead, err: errorMessage(err) }, 'companion server did not start; retrying later');
        this.companionStarts.set(name, { running: false, failedAt: Date.now() });
      },
    );
  }

  /** Starts the local server, or takes over the running one; resolves to which of the two. */
  private async bringUpInfra(i: ManagedInfra): Promise<'started' | 'running'> {
    const before = findServerPid(localServerSpec(this.config, i.name));
    i.state = 'starting';
    i.startedAt = Date.now();
    i.detail = null;
    this.persist();
    const status = await startLocalServer(this.config, i.name, { log: (line) => this.log.info({ name: i.name }, line) });
    const pid = status.pid ?? findServerPid(localServerSpec(this.config, i.name));
    i.pid = pid;
    i.startTime = pid === null ? null : processStartTime(pid);
    if (before !== null && pid !== null) {
      const uptime = procStats(pid)?.uptimeSeconds;
      if (uptime !== undefined) i.startedAt = Date.now() - uptime * 1000;
    }
    i.state = 'running';
    this.persist();
    this.log.info({ name: i.name, pid }, before === null ? 'local server started' : 'watching local server');
    return before === null ? 'started' : 'running';
  }

  private onInfraExit(i: ManagedInfra, why: string): void {
    const now = Date.now();
    const uptime = now - (i.startedAt ?? now);
    i.pid = null;
    i.startTime = null;
    i.lastExit = { at: now };
    if (!i.wanted) {
      i.state = 'stopped';
      this.persist();
      return;
    }
    const decision = restartDecision(i.fastFailures, uptime, this.config.supervisor);
    i.fastFailures = decision.fastFailures;
    if (decision.action === 'give-up') {
      i.state = 'errored';
      i.detail = `${why}; failed ${i.fastFailures} times in a row within ${Math.round(this.config.supervisor.stableAfterMs / 1000)} s of starting; not restarting — see ${this.paths.logFile(i.name)}`;
      this.log.error({ name: i.name, why }, 'local server errored: too many fast failures');
      this.persist();
      return;
    }
    i.state = 'backoff';
    i.detail = `${why}; restarting in ${(decision.delayMs / 1000).toFixed(1)} s`;
    this.log.warn({ name: i.name, why, delayMs: decision.delayMs, fastFailures: i.fastFailures }, 'local server down; restarting');
    this.persist();
    i.timer = setTimeout(() => {
      i.timer = null;
      if (!i.wanted || this.shuttingDown) return;
      i.restarts++;
      i.pending = this.bringUpInfra(i)
        .catch((err: unknown) => {
          this.log.error({ name: i.name, err: errorMessage(err) }, 'local server restart failed');
          if (i.wanted) this.onInfraExit(i, `restart failed: ${errorMessage(err).split('\n')[0]}`);
        })
        .finally(() => {
          i.pending = null;
        });
    }, decision.delayMs);
  }

  /**
   * Polls /health until 200 (state running). A daemon that is not healthy within healthTimeoutMs is
   * terminated: its exit then counts as a fast failure, so a daemon that never gets healthy ends up
   * `errored` instead of sitting in `starting` forever.
   */
  private async waitHealthy(d: Managed, proc: Proc): Promise<boolean> {
    const deadline = Date.now() + this.config.supervisor.healthTimeoutMs;
    while (Date.now() < deadline) {
      if (d.proc !== proc || !d.wanted) return false;
      if (d.state === 'running') return true;
      const answer = await fetchDaemonHealth(d.port, 1000);
      if (answer.answered && answer.ok && d.proc === proc) {
        d.state = 'running';
        d.detail = proc.adopted ? 'adopted from a supervisor that died' : null;
        this.persist();
        this.log.info({ name: d.name, pid: d.pid, adopted: proc.adopted }, 'healthy');
        return true;
      }
      // Not answering yet is normal while it starts; an answer that is not ok says why.
      if (answer.answered) d.detail = `health: HTTP ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`;
      await sleep(200);
    }
    if (d.proc === proc) {
      d.detail = `not healthy within ${this.config.supervisor.healthTimeoutMs} ms${d.detail ? ` (${d.detail})` : ''}`;
      this.log.error({ name: d.name, pid: d.pid, detail: d.detail }, 'terminating a daemon that did not become healthy');
      this.persist();
      proc.kill('SIGTERM');
    }
    return false;
  }

  private persist(): void {
    try {
      writeFileAtomic(this.paths.supervisorState, JSON.stringify(this.snapshot(), null, 2));
    } catch (err) {
      // The snapshot only serves `status` while the supervisor is down; losing one is no reason to die.
      this.log.error({ err: (err as Error).message }, 'cannot persist supervisor state');
    }
  }
}
