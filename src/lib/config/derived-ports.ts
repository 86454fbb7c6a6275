import { activeDaemons, activeInfra, daemonKind, daemonPort, isNatsNode, natsNodeIndex, type Deployment } from '../paths.js';

/** The settings that place every local listener. */
export interface PortLayout extends Deployment {
  nats: Deployment['nats'] & { port: number; monitorPort: number; cluster: { nodes: number; port: number } };
  clickhouse: { hot: { url: string | null; httpPort: number; tcpPort: number }; cold: { url: string | null; httpPort: number; tcpPort: number } };
  redis: { url: string | null; port: number };
  postgres: { url: string | null; port: number };
  simulator: { port: number };
  storage: Deployment['storage'] & { port: number };
  replication: { port: number };
  collector: { port: number };
  brain: { port: number };
}

interface Listener {
  owner: string;
  port: number;
  /** Computed from a setting (storage-2: storage.port + 1), not set by itself. */
  derived: boolean;
}

function listeners(c: PortLayout): Listener[] {
  const out: Listener[] = [];
  if (c.nats.url === null) {
    for (const name of activeInfra(c).filter(isNatsNode)) {
      const k = natsNodeIndex(name);
      const derived = k > 0;
      out.push({ owner: `${name} (nats.port + ${k})`, port: c.nats.port + k, derived }, { owner: `${name} (nats.monitorPort + ${k})`, port: c.nats.monitorPort + k, derived });
      if (c.nats.cluster.nodes > 1) out.push({ owner: `${name} (nats.cluster.port + ${k})`, port: c.nats.cluster.port + k, derived: true });
    }
  }
  for (const side of ['hot', 'cold'] as const) {
    const s = c.clickhouse[side];
    if (s.url === null) out.push({ owner: `clickhouse.${side}.httpPort`, port: s.httpPort, derived: false }, { owner: `clickhouse.${side}.tcpPort`, port: s.tcpPort, derived: false });
  }
  if (c.redis.url === null) out.push({ owner: 'redis.port', port: c.redis.port, derived: false });
  if (c.postgres.url === null) out.push({ owner: 'postgres.port', port: c.postgres.port, derived: false });
  for (const name of activeDaemons(c)) {
    const port = daemonPort(c, name);
    const derived = daemonKind(name) === 'storage' && name !== 'storage';
    out.push({ owner: derived ? `${name} (storage.port + ${port - c.storage.port})` : `${name}.port`, port, derived });
  }
  return out;
}

/**
 * Ports computed for the cluster's extra NATS nodes and the extra storage instances that land on a
 * port something else uses (storage-2 on storage.port + 1 is replication's 8086 by default). Only
 * clashes involving a computed port are reported: settings clashing among themselves are left to
 * the servers' own start-up checks, as before.
 */
export function derivedPortClashes(c: PortLayout): string[] {
  const all = listeners(c);
  const clashes: string[] = [];
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const a = all[i]!;
      const b = all[j]!;
      if (a.port === b.port && (a.derived || b.derived)) clashes.push(`${a.owner} and ${b.owner} both use port ${a.port}`);
    }
  }
  return clashes;
}
