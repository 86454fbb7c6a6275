import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../config/schema.js';
import { MissingBinaryError, MprismError, UsageError, errorMessage } from '../errors.js';
import type { InfraName } from '../paths.js';
import { isAlive, tailFile, waitFor, writeFileAtomic } from '../process-util.js';
import { locateBinary, ZOOKEEPER_JAR, type BinaryInfo } from './binaries.js';
import { infraUrl, isExternal } from './endpoints.js';
import { ensurePostgresDatabase, probeInfra } from './probe.js';
import { findServerPid, portProblem, LocalServerError, type LocalServerSpec } from './server-spec.js';
import { binaryOf, companionSpecs, localServerSpec } from './specs.js';

export { LocalServerError } from './server-spec.js';

export interface InfraStatus {
  name: InfraName;
  mode: 'local' | 'external';
  /** URL without credentials. */
  address: string;
  up: boolean;
  pid: number | null;
  version: string | null;
  error: string | null;
}

const READY_TIMEOUT_MS = 30_000;
const KILL_WAIT_MS = 5000;

/**
 * Stack frame lines bury the message that explains a failure: "3. /lib/...libclickhouse.so(...)" on
 * stderr, and the same behind a timestamp and "<Error> BaseDaemon: " in ClickHouse's error log.
 */
export function isStackFrame(line: string): boolean {
  return /(?:^\s*|BaseDaemon: )\d+\. (?:\/|0x|\S+\()/.test(line);
}

/** The end of the server's logs, for error messages that explain a failed start. */
function logTail(spec: LocalServerSpec): string {
  return [spec.logFile, ...spec.extraLogFiles]
    .map((file) => ({ file, tail: tailFile(file, 200).split('\n').filter((l) => !isStackFrame(l)).slice(-20).join('\n').trim() }))
    .filter((t) => t.tail.length > 0)
    .map((t) => `\n--- last lines of ${t.file} ---\n${t.tail}`)
    .join('');
}

async function killAndWait(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<boolean> {
  try {
    process.kill(pid, signal);
  } catch {
    return !isAlive(pid);
  }
  try {
    await waitFor(() => !isAlive(pid), { timeoutMs, intervalMs: 50, what: `pid ${pid} to exit` });
    return true;
  } catch {
    return false;
  }
}

async function finish(config: Config, name: InfraName, spec: LocalServerSpec, pid: number): Promise<InfraStatus> {
  if (name === 'postgres') await ensurePostgresDatabase(config);
  const status = await probeInfra(config, name, 5000);
  if (!status.up) {
    throw new LocalServerError(`${name} (pid ${pid}) answers its readiness check but not a client: ${status.error}${logTail(spec)}`);
  }
  return { ...status, pid };
}

/**
 * Starts the local server for `name` unless it is already running (then returns it). The server is
 * detached and outlives this process; its pid goes to homePaths(..).pidFile(name). Fails with the
 * tail of its log when it does not come up within 30 s. A replicated tier first brings up its
 * companions (ZooKeeper, the other replicas: see companionSpecs).
 */
export async function startLocalServer(config: Config, name: InfraName, opts: { log?: (l: string) => void } = {}): Promise<InfraStatus> {
  const log = opts.log ?? (() => undefined);
  if (isExternal(config, name)) {
    throw new UsageError(`${name} is configured as an external server (${infraUrl(config, name)}): mprism starts no local ${name}`);
  }
  await startCompanions(config, name, log);
  const spec = localServerSpec(config, name);
  return finish(config, name, spec, await startSpec(config, spec, log));
}

/**
 * Starts those of a replicated tier's ZooKeeper and other replicas that are not running (the running
 * ones are adopted). Also for a tier whose first replica is up: a second replica that died comes back.
 */
export async function startCompanions(config: Config, name: InfraName, log: (l: string) => void = () => undefined): Promise<void> {
  if (isExternal(config, name)) return;
  for (const companion of companionSpecs(config, name)) await startShared(config, companion, log);
}

/**
 * Hot and cold may share the local ZooKeeper and are started in parallel: one start per server and
 * home at a time, or both would launch it and one would fail on the taken port.
 */
const starting = new Map<string, Promise<number>>();

function startShared(config: Config, spec: LocalServerSpec, log: (l: string) => void): Promise<number> {
  const key = spec.pidFile;
  const pending = starting.get(key);
  if (pending !== undefined) return pending;
  const started = startSpec(config, spec, log).finally(() => starting.delete(key));
  starting.set(key, started);
  return started;
}

function startSpec(config: Config, spec: LocalServerSpec, log: (l: string) => void): Promise<number> {
  return bringUpServer(config.home, spec, locateBinary(binaryOf(spec.name)), log);
}

/**
 * Adopts the running instance of `spec` or launches it, and waits until it is ready; resolves to its
 * pid. What every local server shares (also the optional Prometheus): pid file, port checks,
 * start-up timeout, no half-started leftover.
 */
export async function bringUpServer(home: string, spec: LocalServerSpec, binary: BinaryInfo, log: (l: string) => void): Promise<number> {
  const name = spec.name;
  const ready = (pid: number) => async () => {
    if (!isAlive(pid)) throw new LocalServerError(`${name} (pid ${pid}) exited during start-up${logTail(spec)}`);
    return spec.isReady();
  };

  const running = findServerPid(spec);
  if (running !== null) {
    // Possibly still starting (a concurrent `mprism start`): give it the same grace as a fresh start.
    try {
      await waitFor(ready(running), { timeoutMs: READY_TIMEOUT_MS, intervalMs: 50, what: `${name} (pid ${running}) to answer` });
    } catch (err) {
      if (err instanceof MprismError) throw err;
      throw new LocalServerError(`${name} is running (pid ${running}) but does not answer: ${errorMessage(err)}${logTail(spec)}`);
    }
    writeFileAtomic(spec.pidFile, `${running}\n`);
    return running;
  }

  rmSync(spec.pidFile, { force: true });
  mkdirSync(dirname(spec.pidFile), { recursive: true });
  for (const p of spec.ports) {
    const problem = await portProblem(p.host, p.port);
    if (problem !== null) {
      throw new LocalServerError(`cannot start ${name}: ${p.host}:${p.port} (${p.setting}): ${problem}; stop that process or change ${p.setting}`);
    }
  }
  if (binary.path === null) {
    throw new MissingBinaryError(
      `${name === 'zookeeper' ? `java with ${ZOOKEEPER_JAR}` : spec.executable} not found (PATH, /usr/sbin${name === 'postgres' ? ', /usr/lib/postgresql/*/bin' : ''}): run \`mprism init --install\` or \`apt-get install ${binary.debianPackage}\``,
    );
  }

  log(`starting ${name} on ${spec.ports.map((p) => `${p.host}:${p.port}`).join(', ')}`);
  let pid: number;
  try {
    pid = await spec.launch({ binary: binary.path, home, log });
  } catch (err) {
    // E.g. pg_ctl -w gave up while the postmaster still runs: do not leave it behind unrecorded.
    const stray = findServerPid(spec);
    if (stray !== null) await killAndWait(stray, 'SIGKILL', KILL_WAIT_MS);
    if (err instanceof MprismError) throw err;
    throw new LocalServerError(`cannot start ${name}: ${errorMessage(err)}${logTail(spec)}`, { cause: err });
  }
  writeFileAtomic(spec.pidFile, `${pid}\n`);
  try {
    await waitFor(ready(pid), { timeoutMs: READY_TIMEOUT_MS, intervalMs: 50, what: `${name} (pid ${pid}) to answer` });
  } catch (err) {
    // Leave nothing half-started behind: the next start would otherwise adopt a server that never answered.
    if (!(await killAndWait(pid, 'SIGKILL', KILL_WAIT_MS))) log(`${name} (pid ${pid}) did not exit after SIGKILL`);
    rmSync(spec.pidFile, { force: true });
    if (err instanceof MprismError) throw err;
    throw new LocalServerError(`${name} did not become ready: ${errorMessage(err)}${logTail(spec)}`, { cause: err });
  }
  log(`${name} ready (pid ${pid})`);
  return pid;
}

/**
 * Stops the local server: its stop signal, then SIGKILL after timeoutMs. Removes the pid file.
 * Resolves to whether a server was running. A replicated tier's other replicas stop with it, and the
 * local ZooKeeper once no replica of the other tier still needs it.
 */
export async function stopLocalServer(config: Config, name: InfraName, timeoutMs: number): Promise<boolean> {
  const wasRunning = await stopServer(localServerSpec(config, name), timeoutMs);
  const companions = companionSpecs(config, name);
  const others = (['clickhouse-hot', 'clickhouse-cold'] as const).filter((n) => n !== name);
  const zookeeperStillUsed = others.some((n) => companionSpecs(config, n).length > 0 && findServerPid(localServerSpec(config, n)) !== null);
  for (const companion of [...companions].reverse()) {
    if (companion.name === 'zookeeper' && zookeeperStillUsed) continue;
    await stopServer(companion, timeoutMs);
  }
  return wasRunning;
}

/** Stops one server (any spec, also the optional Prometheus); resolves to whether it was running. */
export async function stopServer(spec: LocalServerSpec, timeoutMs: number): Promise<boolean> {
  const pid = findServerPid(spec);
  if (pid !== null && !(await killAndWait(pid, spec.stopSignal, timeoutMs))) {
    if (!(await killAndWait(pid, 'SIGKILL', KILL_WAIT_MS))) {
      throw new LocalServerError(`${spec.name} (pid ${pid}) survived SIGKILL for ${KILL_WAIT_MS} ms`);
    }
  }
  rmSync(spec.pidFile, { force: true });
  return pid !== null;
}
