import { createServer, type AddressInfo } from 'node:net';
import { realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { MprismError } from '../errors.js';
import { homePaths, type InfraName } from '../paths.js';
import { isAlive, listPids, processCommand, processCwd, readPidFile } from '../process-util.js';

/** A local server failed to start or stop; a failed start carries the tail of its log. */
export class LocalServerError extends MprismError {
  override readonly code = 'unreachable';
}

export interface BoundPort {
  /** Config key, so an error can say which setting to change. */
  setting: string;
  host: string;
  port: number;
}

export interface LaunchContext {
  /** Absolute path of the server binary (for postgres: the `postgres` executable next to initdb/pg_ctl). */
  binary: string;
  home: string;
  log: (line: string) => void;
}

/** A platform server (InfraName) or the optional local Prometheus, which no daemon depends on. */
export type LocalServerName = InfraName | 'prometheus';

/** How one kind of local server is laid out, launched, recognized and stopped. */
export interface LocalServerSpec {
  readonly name: LocalServerName;
  /** Basename of argv[0] of the running server process. */
  readonly executable: string;
  /** A string in the server's command line that tells this instance apart from others of the same binary. */
  readonly marker: string;
  /** For servers whose command line cannot tell instances apart: the working directory the server runs in. */
  readonly cwd?: string;
  readonly dataDir: string;
  readonly pidFile: string;
  /** Where stdout/stderr (or the server's own log) goes: homePaths(..).logFile(name). */
  readonly logFile: string;
  /** Extra files whose tail explains a failed start (e.g. ClickHouse's own error log). */
  readonly extraLogFiles: readonly string[];
  readonly ports: readonly BoundPort[];
  /** PostgreSQL's SIGTERM is a "smart" shutdown that waits for clients to leave; SIGINT is `pg_ctl stop -m fast`. */
  readonly stopSignal: NodeJS.Signals;
  /** Prepares the data directory and launches the server; resolves to the server's pid (maybe not ready yet). */
  launch(ctx: LaunchContext): Promise<number>;
  /** True once the server accepts requests. */
  isReady(): Promise<boolean>;
}

export function commonPaths(home: string, name: LocalServerName) {
  const paths = homePaths(home);
  return { dataDir: paths.dataDir(name), pidFile: paths.pidFile(name), logFile: paths.logFile(name) };
}

/** Does this pid belong to the given server instance (guards against PID reuse and foreign processes)? */
export function ownsProcess(spec: Pick<LocalServerSpec, 'executable' | 'marker' | 'cwd'>, pid: number): boolean {
  if (!isAlive(pid)) return false;
  const cmd = processCommand(pid);
  if (cmd === null) return false;
  const argv0 = cmd.split(/\s+/, 1)[0] ?? '';
  if (basename(argv0) !== spec.executable || !cmd.includes(spec.marker)) return false;
  if (spec.cwd === undefined) return true;
  try {
    return processCwd(pid) === realpathSync(spec.cwd);
  } catch {
    return false;
  }
}

/**
 * The pid of the running server instance: the pid file when it names the server, else a scan of
 * /proc, so a server whose pid file was lost is still found (and not started twice).
 */
export function findServerPid(spec: Pick<LocalServerSpec, 'executable' | 'marker' | 'cwd' | 'pidFile'>): number | null {
  const recorded = readPidFile(spec.pidFile);
  if (recorded !== null && ownsProcess(spec, recorded)) return recorded;
  for (const pid of listPids()) {
    if (pid !== process.pid && ownsProcess(spec, pid)) return pid;
  }
  return null;
}

/** Why the port cannot be bound, or null when it is free. */
export function portProblem(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      resolve(
        err.code === 'EADDRINUSE'
          ? 'already in use by another process'
          : err.code === 'EADDRNOTAVAIL'
            ? 'address is not on this machine'
            : err.message,
      );
    });
    server.listen({ host, port, exclusive: true }, () => {
      const bound = (server.address() as AddressInfo).port;
      server.close(() => resolve(bound === port ? null : `bound ${bound} instead`));
    });
  });
}

/** Single-quotes a string for /bin/sh (pg_ctl passes its -o options through a shell). */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** A host as it goes into a URL: IPv6 literals need brackets. */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
