import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { backoffDelay, sleep } from '../backoff.js';
import type { Config } from '../config/schema.js';
import { daemonPort } from '../daemon-runner.js';
import type { Logger } from '../log.js';
import { DAEMON_NAMES, INFRA_NAMES, PACKAGE_ROOT, homePaths, type DaemonName } from '../paths.js';
import { terminate, writeFileAtomic } from '../process-util.js';
import { inspectLock } from './lock.js';
import { RotatingLog, copyTruncateIfLarger } from './rotating-log.js';
import type { DaemonStatus, SupervisorSnapshot } from './state.js';

const DAEMON_MAIN = join(PACKAGE_ROOT, 'dist', 'daemons', 'main.js');

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

interface Managed extends DaemonStatus {
  child: ChildProcess | null;
  restartTimer: NodeJS.Timeout | null;
  simulate: boolean;
}

export interface StartResult {
  ok: boolean;
  daemons: DaemonStatus[];
  failed: { name: DaemonName; reason: string }[];
}

/**
 * Spawns the daemons, gates each start on its /health, restarts a daemon that dies with capped
 * exponential backoff (reset after stable uptime) and gives up (state `errored`) after
 * maxFastFailures exits in a row that each came too soon.
 */
export class Supervisor {
  private readonly daemons = new Map<DaemonName, Managed>();
  private readonly logs = new Map<DaemonName, RotatingLog>();
  private readonly paths;
  private simulate = false;
  private logTimer: NodeJS.Timeout | null = null;
  /** Set by shutdown(): a start still walking its list must not spawn anything more. */
  private shuttingDown = false;
  /** Start, stop and shutdown requests run one after another (cron repair and a user may overlap). */
  private operations: Promise<unknown> = Promise.resolve();
  private readonly startedAt = Date.now();

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.paths = homePaths(config.home);
    for (const name of DAEMON_NAMES) {
      this.daemons.set(name, {
        name, state: 'stopped', pid: null, startedAt: null, restarts: 0, fastFailures: 0, lastExit: null,
        detail: null, port: daemonPort(config, name), wanted: false, child: null, restartTimer: null, simulate: false,
      });
    }
  }

  snapshot(): SupervisorSnapshot {
    return {
      pid: process.pid,
      startedAt: this.startedAt,
      simulate: this.simulate,
      daemons: [...this.daemons.values()].map(({ child: _c, restartTimer: _t, simulate: _s, ...status }) => status),
    };
  }

  /** Start in dependency order, each gated on its health; stops at the first that does not become healthy. */
  start(names: readonly DaemonName[], simulate: boolean): Promise<StartResult> {
    return this.serialize(() => this.doStart(names, simulate));
  }

  /** Stop in reverse dependency order: SIGTERM, then SIGKILL after timeoutMs. */
  stop(names: readonly DaemonName[], timeoutMs: number): Promise<void> {
    return this.serialize(() => this.doStop(names, timeoutMs));
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.operations.then(op, op);
    this.operations = run.catch(() => undefined);
    return run;
  }

  private async doStart(names: readonly DaemonName[], simulate: boolean): Promise<StartResult> {
    // Simulate mode is sticky for the supervisor's life: `start storage` later must not switch the
    // collector to the real exchanges. Leaving simulate mode takes a stop.
    if (simulate) this.simulate = true;
    const failed: StartResult['failed'] = [];
    for (const name of DAEMON_NAMES.filter((n) => names.includes(n))) {
      if (this.shuttingDown) {
        failed.push({ name, reason: 'supervisor is shutting down' });
        break;
      }
      const d = this.daemons.get(name)!;
      if (d.state === 'running' && SIMULATE_AWARE.has(name) && d.simulate !== this.simulate) {
        this.log.info({ name }, 'restarting to switch to simulate mode');
        await this.doStop([name], 10_000);
      }
      if (d.state === 'running') continue;
      let healthy: boolean;
      if (d.state === 'starting' && d.child) {
        healthy = await this.waitHealthy(d, d.child);
      } else {
        d.wanted = true;
        d.simulate = this.simulate;
        d.fastFailures = 0;
        // A daemon waiting in backoff is started now; its pending restart must not spawn a second one.
        if (d.restartTimer) clearTimeout(d.restartTimer);
        d.restartTimer = null;
        await this.replaceOrphan(name);
        if (!d.wanted) break; // stopped while we waited for an orphan to exit
        healthy = await this.waitHealthy(d, this.spawn(d));
      }
      if (!healthy) {
        failed.push({ name, reason: d.detail ?? 'did not become healthy' });
        break;
      }
    }
    return { ok: failed.length === 0, daemons: this.snapshot().daemons, failed };
  }

  private async doStop(names: readonly DaemonName[], timeoutMs: number): Promise<void> {
    for (const name of [...DAEMON_NAMES].reverse().filter((n) => names.includes(n))) {
      const d = this.daemons.get(name)!;
      d.wanted = false;
      if (d.restartTimer) clearTimeout(d.restartTimer);
      d.restartTimer = null;
      if (d.child && d.child.exitCode === null && d.child.signalCode === null) {
        d.state = 'stopping';
        this.persist();
        const exited = new Promise<void>((resolve) => d.child!.once('exit', () => resolve()));
        d.child.kill('SIGTERM');
        const inTime = await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)]);
        if (!inTime) {
          this.log.warn({ name, timeoutMs }, 'did not stop in time; killing');
          d.child.kill('SIGKILL');
          await exited;
        }
      }
      d.state = 'stopped';
      d.pid = null;
      d.startedAt = null;
      d.detail = null;
      this.persist();
    }
  }

  /**
   * Keeps the logs of local servers (and the supervisor's own stderr) within the same size cap as
   * the daemons' logs, checking every intervalMs while the supervisor runs.
   */
  capServerLogs(intervalMs = 30_000): void {
    const files = [...INFRA_NAMES, 'supervisor.stderr'].map((n) => this.paths.logFile(n));
    const check = () => {
      for (const f of files) {
        try {
          if (copyTruncateIfLarger(f, this.config.logs.maxBytes, this.config.logs.keep)) this.log.info({ file: f }, 'rotated server log');
        } catch (err) {
          this.log.warn({ file: f, err: (err as Error).message }, 'could not rotate server log');
        }
      }
    };
    check();
    this.logTimer = setInterval(check, intervalMs);
    this.logTimer.unref();
  }

  async shutdown(timeoutMs: number): Promise<void> {
    this.shuttingDown = true;
    if (this.logTimer) clearInterval(this.logTimer);
    await this.stop(DAEMON_NAMES, timeoutMs);
    for (const l of this.logs.values()) l.close();
  }

  private logFor(name: DaemonName): RotatingLog {
    let l = this.logs.get(name);
    if (!l) {
      l = new RotatingLog(this.paths.logFile(name), this.config.logs.maxBytes, this.config.logs.keep);
      this.logs.set(name, l);
    }
    return l;
  }

  /** A daemon left running by a supervisor that was killed holds its lock: stop it so ours can start. */
  private async replaceOrphan(name: DaemonName): Promise<void> {
    const lock = inspectLock(this.paths.lockFile(name));
    if (lock.state !== 'live' || lock.info.pid === process.pid) return;
    const pid = lock.info.pid;
    this.log.warn({ name, pid }, 'replacing a daemon left running by an earlier supervisor');
    await terminate(pid, 15_000).catch((err: unknown) => {
      // The new daemon will then refuse on the live lock and count as a failed start.
      this.log.error({ name, pid, err: (err as Error).message }, 'could not stop the old daemon');
    });
  }

  private spawn(d: Managed): ChildProcess {
    const out = this.logFor(d.name);
    const child = spawn(process.execPath, [DAEMON_MAIN, d.name], {
      env: { ...process.env, MPRISM_HOME: this.config.home, ...(this.config.file ? { MPRISM_CONFIG: this.config.file } : {}), MPRISM_SIMULATE: d.simulate ? '1' : '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const write = (b: Buffer) => {
      try {
        out.write(b);
      } catch (err) {
        // A full disk must not take the supervisor down with it; the daemon keeps running.
        this.log.error({ name: d.name, err: (err as Error).message }, 'cannot write daemon log');
      }
    };
    child.stdout!.on('data', write);
    child.stderr!.on('data', write);
    d.child = child;
    d.pid = child.pid ?? null;
    d.startedAt = Date.now();
    d.state = 'starting';
    d.detail = null;
    this.persist();
    this.log.info({ name: d.name, pid: d.pid }, 'spawned');
    child.once('exit', (code, signal) => this.onExit(d, child, code, signal));
    child.once('error', (err) => this.log.error({ name: d.name, err: err.message }, 'spawn failed'));
    return child;
  }

  private onExit(d: Managed, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (d.child !== child) return;
    d.child = null;
    d.lastExit = { code, signal, at: Date.now() };
    d.pid = null;
    if (!d.wanted) return; // stop() owns the state transition
    const how = signal ? `signal ${signal}` : `code ${code}`;
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
      void this.replaceOrphan(d.name).then(() => {
        if (!d.wanted || d.child) return; // stopped, or started by a request, while we waited
        void this.waitHealthy(d, this.spawn(d));
      });
    }, delay);
  }

  /**
   * Polls /health until 200 (state running). A child that is not healthy within healthTimeoutMs is
   * terminated: its exit then counts as a fast failure, so a daemon that never gets healthy ends up
   * `errored` instead of sitting in `starting` forever.
   */
  private async waitHealthy(d: Managed, child: ChildProcess): Promise<boolean> {
    const deadline = Date.now() + this.config.supervisor.healthTimeoutMs;
    while (Date.now() < deadline) {
      if (d.child !== child || !d.wanted) return false;
      if (d.state === 'running') return true;
      try {
        const res = await fetch(`http://127.0.0.1:${d.port}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok && d.child === child) {
          d.state = 'running';
          d.detail = null;
          this.persist();
          this.log.info({ name: d.name, pid: d.pid }, 'healthy');
          return true;
        }
        d.detail = `health: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
    if (d.child === child) {
      d.detail = `not healthy within ${this.config.supervisor.healthTimeoutMs} ms${d.detail ? ` (${d.detail})` : ''}`;
      this.log.error({ name: d.name, pid: d.pid, detail: d.detail }, 'terminating a daemon that did not become healthy');
      this.persist();
      child.kill('SIGTERM');
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
