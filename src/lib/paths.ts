import { homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the installed package (holds config/, dist/, bin/). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const INFRA_NAMES = ['nats', 'clickhouse-hot', 'clickhouse-cold', 'redis', 'postgres'] as const;
export type InfraName = (typeof INFRA_NAMES)[number];

/** Daemons in dependency (start) order; stop runs in reverse. */
export const DAEMON_NAMES = ['simulator', 'storage', 'replication', 'collector', 'brain'] as const;
export type DaemonName = (typeof DAEMON_NAMES)[number];

export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.MPRISM_HOME ?? join(homedir(), '.mprism'));
}

/** Layout under MPRISM_HOME. */
export function homePaths(home: string) {
  return {
    home,
    configFile: join(home, 'mprism.yaml'),
    data: join(home, 'data'),
    dataDir: (name: InfraName | 'replication' | 'prometheus') => join(home, 'data', name),
    /** The local Prometheus's config, rules and file_sd targets (written by `mprism start`). */
    prometheus: join(home, 'prometheus'),
    run: join(home, 'run'),
    pidFile: (name: string) => join(home, 'run', `${name}.pid`),
    lockFile: (name: string) => join(home, 'run', `${name}.lock`),
    supervisorSocket: join(home, 'run', 'supervisor.sock'),
    supervisorState: join(home, 'run', 'supervisor-state.json'),
    logs: join(home, 'logs'),
    logFile: (name: string) => join(home, 'logs', `${name}.log`),
    tmp: join(home, 'tmp'),
  };
}
export type HomePaths = ReturnType<typeof homePaths>;
