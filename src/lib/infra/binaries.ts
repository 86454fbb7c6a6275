import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { join, delimiter } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { MissingBinaryError, errorMessage } from '../errors.js';
import { INFRA_NAMES, isNatsNode, type InfraName } from '../paths.js';

/** Optional servers: installed by `mprism init --install`, never required by a plain start. */
export const OPTIONAL_BINARIES = ['prometheus'] as const;
/** What a binary is looked up for: an infra server, the ZooKeeper of replicated ClickHouse tiers, or an optional server. */
export type BinaryName = InfraName | 'zookeeper' | (typeof OPTIONAL_BINARIES)[number];

export interface BinaryInfo {
  name: BinaryName;
  /** Absolute path of the server executable, null when not found. */
  path: string | null;
  debianPackage: string;
}

/** Executable and Debian package per server kind; both ClickHouse instances run the same binary. */
const BINARY: Record<BinaryName, { executable: string; debianPackage: string }> = {
  nats: { executable: 'nats-server', debianPackage: 'nats-server' },
  'nats-2': { executable: 'nats-server', debianPackage: 'nats-server' },
  'nats-3': { executable: 'nats-server', debianPackage: 'nats-server' },
  // A Java server: the executable is `java`, found only together with the package's jar (ZOOKEEPER_JAR).
  zookeeper: { executable: 'java', debianPackage: 'zookeeper' },
  'clickhouse-hot': { executable: 'clickhouse-server', debianPackage: 'clickhouse-server' },
  'clickhouse-cold': { executable: 'clickhouse-server', debianPackage: 'clickhouse-server' },
  redis: { executable: 'redis-server', debianPackage: 'redis-server' },
  postgres: { executable: 'postgres', debianPackage: 'postgresql' },
  // Debian's package also ships promtool, which the tests use to check the shipped config and rules.
  prometheus: { executable: 'prometheus', debianPackage: 'prometheus' },
};

/** Where Debian's zookeeper package puts the server; its manifest's Class-Path names the other jars it needs. */
export const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';

/** PostgreSQL needs these next to `postgres` to create and control a cluster. */
const POSTGRES_TOOLS = ['postgres', 'initdb', 'pg_ctl'] as const;

export interface SearchPaths {
  /** Directories from $PATH. */
  path: string[];
  /** Debian keeps server binaries outside a normal user's PATH. */
  extra: string[];
  /** Debian's versioned PostgreSQL installs: /usr/lib/postgresql/<version>/bin. */
  postgresRoot: string;
}

export function defaultSearchPaths(env: NodeJS.ProcessEnv = process.env): SearchPaths {
  return {
    path: (env.PATH ?? '').split(delimiter).filter((d) => d.length > 0),
    extra: ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin'],
    postgresRoot: '/usr/lib/postgresql',
  };
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findExecutable(executable: string, dirs: readonly string[]): string | null {
  for (const dir of dirs) {
    const candidate = join(dir, executable);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

/** Compares dotted version directory names numerically, so 15 sorts above 9.6. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Directory holding postgres, initdb and pg_ctl together: $PATH first, then the newest Debian version. */
export function postgresBinDir(search: SearchPaths = defaultSearchPaths()): string | null {
  const complete = (dir: string) => POSTGRES_TOOLS.every((tool) => isExecutable(join(dir, tool)));
  for (const dir of [...search.path, ...search.extra]) if (complete(dir)) return dir;
  let versions: string[];
  try {
    versions = readdirSync(search.postgresRoot).filter((v) => /^\d+(\.\d+)*$/.test(v));
  } catch {
    return null;
  }
  for (const version of versions.sort(compareVersions).reverse()) {
    const dir = join(search.postgresRoot, version, 'bin');
    if (complete(dir)) return dir;
  }
  return null;
}

export function locateBinary(name: BinaryName, search: SearchPaths = defaultSearchPaths(), zookeeperJar = ZOOKEEPER_JAR): BinaryInfo {
  const { executable, debianPackage } = BINARY[name];
  if (name === 'zookeeper') {
    // java alone is not ZooKeeper: without the jar the package is missing.
    const java = findExecutable(executable, [...search.path, ...search.extra]);
    return { name, path: java !== null && existsSync(zookeeperJar) ? java : null, debianPackage };
  }
  if (name === 'postgres') {
    const dir = postgresBinDir(search);
    return { name, path: dir === null ? null : join(dir, executable), debianPackage };
  }
  return { name, path: findExecutable(executable, [...search.path, ...search.extra]), debianPackage };
}

/** One entry per infra server, in INFRA_NAMES order (the cluster's extra NATS nodes run the same binary as `nats`), then ZooKeeper. */
export function locateBinaries(search: SearchPaths = defaultSearchPaths()): BinaryInfo[] {
  return [...INFRA_NAMES.filter((name) => !isNatsNode(name) || name === 'nats'), 'zookeeper' as const].map((name) => locateBinary(name, search));
}

/** Runs a command, feeding each output line to `log`; resolves to its exit code (127 when it cannot start). */
export type CommandRunner = (command: string, args: string[], env: NodeJS.ProcessEnv, log: (line: string) => void) => Promise<number>;

const runCommand: CommandRunner = (command, args, env, log) =>
  new Promise((resolve) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const pending = [child.stdout, child.stderr].map(
      (stream) => new Promise<void>((done) => createInterface({ input: stream }).on('line', log).on('close', done)),
    );
    child.on('error', (err) => {
      log(`${command}: ${err.message}`);
      resolve(127);
    });
    child.on('close', (code) => void Promise.all(pending).then(() => resolve(code ?? 1)));
  });

/** apt's package lists only need refreshing once per process. */
let aptUpdated = false;

export interface InstallOptions {
  log: (line: string) => void;
  /** Command runner; tests replace it to observe the apt invocations. */
  run?: CommandRunner;
  /** Where to look for apt-get (default: $PATH and the usual sbin directories). */
  search?: SearchPaths;
  /** Effective uid (default process.getuid()). */
  uid?: number;
}

/**
 * Installs the Debian packages of the missing binaries with apt-get (update once, then install -y),
 * non-interactively. Throws MissingBinaryError with the manual command when apt is unavailable or fails.
 */
export async function installMissing(missing: BinaryInfo[], opts: InstallOptions): Promise<void> {
  const packages = [...new Set(missing.filter((b) => b.path === null).map((b) => b.debianPackage))];
  if (packages.length === 0) return;
  const manual = `apt-get install -y ${packages.join(' ')}`;
  const search = opts.search ?? defaultSearchPaths();
  const aptGet = findExecutable('apt-get', [...search.path, ...search.extra]);
  if (aptGet === null) {
    throw new MissingBinaryError(
      `missing server packages (${packages.join(', ')}) and apt-get is not available: install them with your package manager`,
    );
  }
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  if (uid !== 0) {
    throw new MissingBinaryError(`installing ${packages.join(', ')} needs root: run \`sudo ${manual}\``);
  }
  const run = opts.run ?? runCommand;
  const env: NodeJS.ProcessEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const attempt = async (args: string[]): Promise<void> => {
    opts.log(`$ apt-get ${args.join(' ')}`);
    let code: number;
    try {
      code = await run(aptGet, args, env, opts.log);
    } catch (err) {
      throw new MissingBinaryError(`apt-get ${args[0]} failed: ${errorMessage(err)}; try \`${manual}\``, { cause: err });
    }
    if (code !== 0) throw new MissingBinaryError(`apt-get ${args[0]} exited with code ${code}; try \`${manual}\``);
  };
  if (!aptUpdated) {
    await attempt(['update']);
    aptUpdated = true;
  }
  await attempt(['install', '-y', ...packages]);
}
