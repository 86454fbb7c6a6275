import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import type { Config } from '../config/schema.js';
import { readPidFile, tailFile } from '../process-util.js';
import { commonPaths, ownsProcess, shellQuote, LocalServerError, type LocalServerSpec } from './server-spec.js';
import { runToCompletion } from './launch.js';

/** The unprivileged account PostgreSQL runs as when we are root (initdb and postgres refuse root). */
const SERVICE_USER = 'postgres';

interface Account {
  uid: number;
  gid: number;
  groups: number[];
}

async function lookupAccount(user: string): Promise<Account> {
  const id = async (flag: string) => {
    const r = await runToCompletion('id', [flag, user], { timeoutMs: 5000 });
    if (r.code !== 0) {
      throw new LocalServerError(
        `PostgreSQL cannot run as root and user "${user}" does not exist (${r.output}); installing the postgresql package creates it`,
      );
    }
    return r.output.split(/\s+/).map(Number);
  };
  const [uid] = await id('-u');
  const [gid] = await id('-g');
  return { uid: uid as number, gid: gid as number, groups: await id('-G') };
}

/** Directories on the way to `path` (excluding `/`), outermost first. */
export function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let dir = dirname(path); dir !== '/' && dir !== '.'; dir = dirname(dir)) out.unshift(dir);
  return out;
}

/** Whether the mode bits let `account` enter a directory owned by uid/gid. */
export function canTraverse(mode: number, owner: { uid: number; gid: number }, account: Account): boolean {
  if (owner.uid === account.uid) return (mode & 0o100) !== 0;
  if (owner.gid === account.gid || account.groups.includes(owner.gid)) return (mode & 0o010) !== 0;
  return (mode & 0o001) !== 0;
}

/**
 * The postgres account must be able to reach its data directory and log file. Temp dirs (0700) and
 * /root (for MPRISM_HOME=~/.mprism) block that; we add only the search bit for others (o+x) on the
 * directories in the way: nothing becomes listable or readable, and the change is logged.
 */
function ensureReachable(targets: readonly string[], account: Account, log: (line: string) => void): void {
  const dirs = new Set(targets.flatMap((t) => [...ancestors(t), t]));
  for (const dir of dirs) {
    const st = statSync(dir);
    if (!canTraverse(st.mode, st, account)) {
      chmodSync(dir, (st.mode & 0o7777) | 0o001);
      log(`made ${dir} traversable for user ${SERVICE_USER} (chmod o+x) so PostgreSQL can reach its data`);
    }
  }
}

function findRunuser(): string {
  for (const candidate of ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser']) if (existsSync(candidate)) return candidate;
  return 'runuser';
}

/** Linux limits a Unix socket path to 107 bytes. */
const MAX_SOCKET_PATH = 107;

export function postgresServer(config: Config): LocalServerSpec {
  const { host, port, user } = config.postgres;
  const paths = commonPaths(config.home, 'postgres');
  const pgdata = paths.dataDir;
  return {
    name: 'postgres',
    executable: 'postgres',
    marker: pgdata,
    ...paths,
    extraLogFiles: [],
    ports: [{ setting: 'postgres.port', host, port }],
    // SIGINT is PostgreSQL's "fast" shutdown (pg_ctl stop -m fast); SIGTERM would wait for clients to leave.
    stopSignal: 'SIGINT',
    async launch(ctx) {
      const binDir = dirname(ctx.binary);
      const asRoot = process.getuid?.() === 0;
      const account = asRoot ? await lookupAccount(SERVICE_USER) : null;
      // Runs a PostgreSQL tool as the service account (directly when we are not root).
      const tool = (name: string, args: string[]) =>
        account === null
          ? runToCompletion(join(binDir, name), args, { timeoutMs: 60_000, cwd: pgdata })
          : runToCompletion(findRunuser(), ['-u', SERVICE_USER, '--', join(binDir, name), ...args], { timeoutMs: 60_000, cwd: pgdata });

      mkdirSync(pgdata, { recursive: true, mode: 0o700 });
      mkdirSync(dirname(paths.logFile), { recursive: true });
      closeSync(openSync(paths.logFile, 'a'));
      if (account !== null) {
        chownSync(pgdata, account.uid, account.gid);
        chownSync(paths.logFile, account.uid, account.gid);
        ensureReachable([pgdata, dirname(paths.logFile)], account, ctx.log);
      }

      if (!existsSync(join(pgdata, 'PG_VERSION'))) {
        ctx.log(`initializing PostgreSQL cluster in ${pgdata}`);
        const init = await tool('initdb', ['-D', pgdata, '-U', user, '--auth=trust', '-E', 'UTF8', '--locale=C']);
        if (init.code !== 0) throw new LocalServerError(`initdb failed (code ${init.code}): ${init.output.split('\n').slice(-10).join('\n')}`);
      }

      const socketDir = pgdata.length + `/.s.PGSQL.${port}`.length <= MAX_SOCKET_PATH ? pgdata : '';
      // After kill -9 the lock files remain, and PostgreSQL refuses to start while their pid answers
      // kill(pid, 0): a reused pid or a not-yet-reaped zombie postmaster. Remove those that do not
      // name a running postmaster of this data directory.
      const lock = join(pgdata, 'postmaster.pid');
      const locks = socketDir === '' ? [lock] : [lock, join(socketDir, `.s.PGSQL.${port}.lock`)];
      for (const file of locks) {
        const holder = readPidFile(file);
        if (holder !== null && !ownsProcess({ executable: 'postgres', marker: pgdata }, holder)) rmSync(file, { force: true });
      }
      // An empty socket directory disables Unix sockets; clients use TCP (and pg_ctl -w only reads postmaster.pid).
      const serverOpts = `-p ${port} -h ${shellQuote(host)} -k ${shellQuote(socketDir)}`;
      const start = await tool('pg_ctl', ['-D', pgdata, '-l', paths.logFile, '-o', serverOpts, '-w', '-t', '30', 'start']);
      if (start.code !== 0) {
        throw new LocalServerError(`pg_ctl start failed (code ${start.code}): ${start.output}\n${tailFile(paths.logFile, 20)}`);
      }
      const pid = readPidFile(lock);
      if (pid === null) throw new LocalServerError(`PostgreSQL started but ${lock} holds no pid:\n${tailFile(paths.logFile, 20)}`);
      return pid;
    },
    async isReady() {
      const client = new pg.Client({ host, port, user, database: 'postgres', connectionTimeoutMillis: 1000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
  };
}
