import { homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the installed package (holds config/, dist/, bin/). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The local NATS cluster's nodes: `nats` alone by default, `nats-2` and `nats-3` with nats.cluster.nodes 3. */
export const NATS_NODE_NAMES = ['nats', 'nats-2', 'nats-3'] as const;
export type NatsNodeName = (typeof NATS_NODE_NAMES)[number];

export const INFRA_NAMES = [...NATS_NODE_NAMES, 'clickhouse-hot', 'clickhouse-cold', 'redis', 'postgres'] as const;
export type InfraName = (typeof INFRA_NAMES)[number];

/** Storage daemons one supervisor can run (storage.instances); each takes its own port, lock, pid and log. */
export const STORAGE_INSTANCE_NAMES = ['storage', 'storage-2', 'storage-3', 'storage-4'] as const;
export type StorageInstanceName = (typeof STORAGE_INSTANCE_NAMES)[number];
/**
 * Servers a replicated ClickHouse tier brings with it when mprism runs it (clickhouse.*.replication):
 * its replicas beyond the first (clickhouse-hot-2...) and the ZooKeeper they share. Not INFRA_NAMES:
 * they start and stop with their tier and exist only when it is replicated.
 */
export type CompanionName = 'zookeeper' | `clickhouse-${'hot' | 'cold'}-${number}`;
/** Every server mprism may run locally: the platform's, their companions, and the optional Prometheus. */
export type LocalServerName = InfraName | CompanionName | 'prometheus';

/** Daemons in dependency (start) order; stop runs in reverse. */
export const DAEMON_NAMES = ['simulator', ...STORAGE_INSTANCE_NAMES, 'replication', 'collector', 'brain'] as const;
export type DaemonName = (typeof DAEMON_NAMES)[number];
/** What a daemon runs: every storage instance runs the storage daemon. */
export const DAEMON_KINDS = ['simulator', 'storage', 'replication', 'collector', 'brain'] as const;
export type DaemonKind = (typeof DAEMON_KINDS)[number];

export function isNatsNode(name: InfraName): name is NatsNodeName {
  return (NATS_NODE_NAMES as readonly string[]).includes(name);
}

/** 0 for `nats`, 1 for `nats-2`...; the node's ports are the configured ones plus this. */
export function natsNodeIndex(name: NatsNodeName): number {
  return NATS_NODE_NAMES.indexOf(name);
}

function isStorageInstance(name: DaemonName): name is StorageInstanceName {
  return (STORAGE_INSTANCE_NAMES as readonly string[]).includes(name);
}

/** 0 for `storage`, 1 for `storage-2`...; the instance listens on storage.port plus this. */
export function storageInstanceIndex(name: StorageInstanceName): number {
  return STORAGE_INSTANCE_NAMES.indexOf(name);
}

export function daemonKind(name: DaemonName): DaemonKind {
  return isStorageInstance(name) ? 'storage' : (name as Exclude<DaemonName, StorageInstanceName>);
}

/** The HTTP port of a daemon (its /health and /metrics): storage instance k listens on storage.port + k. */
export function daemonPort(config: { readonly [K in DaemonKind]: { readonly port: number } }, name: DaemonName): number {
  const kind = daemonKind(name);
  return config[kind].port + (kind === 'storage' ? storageInstanceIndex(name as StorageInstanceName) : 0);
}

/** The settings that decide which of the fixed names are in use. */
export interface Deployment {
  nats: { url: string | null; cluster: { nodes: number } };
  storage: { instances: number };
  /** The daemons this machine runs (null: all); see configSchema's `daemons`. */
  daemons?: readonly DaemonKind[] | null;
}

/** Local NATS nodes beyond the configured count, and every node but the first of an external cluster, are not in use. */
export function activeInfra(config: Deployment): InfraName[] {
  const natsNodes = config.nats.url !== null ? 1 : config.nats.cluster.nodes;
  return INFRA_NAMES.filter((name) => !isNatsNode(name) || natsNodeIndex(name) < natsNodes);
}

/**
 * Daemons this home runs: those of the kinds in `daemons` (all when null; the simulator, the
 * collector's test venue, goes with the collector), and no storage instance beyond storage.instances.
 */
export function activeDaemons(config: Deployment): DaemonName[] {
  const kinds = config.daemons ?? DAEMON_KINDS;
  const runs = (kind: DaemonKind) => kinds.includes(kind) || (kind === 'simulator' && kinds.includes('collector'));
  return DAEMON_NAMES.filter((name) => runs(daemonKind(name)) && (!isStorageInstance(name) || storageInstanceIndex(name) < config.storage.instances));
}

export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.MPRISM_HOME ?? join(homedir(), '.mprism'));
}

/** Layout under MPRISM_HOME. */
export function homePaths(home: string) {
  return {
    home,
    configFile: join(home, 'mprism.yaml'),
    data: join(home, 'data'),
    dataDir: (name: LocalServerName | 'replication') => join(home, 'data', name),
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
