import { mkdirSync, writeFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import type { NatsNodeName } from '../paths.js';
import { commonPaths, urlHost, type LocalServerSpec } from './server-spec.js';
import { localNatsNodes, natsNodePorts } from './endpoints.js';
import { spawnDetached } from './launch.js';
import { httpGet } from './http-get.js';

/** What one node of a local JetStream cluster is told: its own ports and store, and its peers' routes. */
export interface NatsClusterNode {
  serverName: string;
  host: string;
  port: number;
  monitorPort: number;
  clusterName: string;
  clusterPort: number;
  storeDir: string;
  /** The other nodes' route ports. */
  routePorts: number[];
}

/** nats-server's config syntax takes JSON strings and arrays as they are. */
export function renderNatsClusterConfig(node: NatsClusterNode): string {
  const q = (v: string) => JSON.stringify(v);
  const routes = node.routePorts.map((p) => q(`nats-route://${urlHost(node.host)}:${p}`));
  return [
    '# Written by mprism at every start of this node; edits are overwritten.',
    `server_name: ${q(node.serverName)}`,
    `listen: ${q(`${urlHost(node.host)}:${node.port}`)}`,
    `http: ${q(`${urlHost(node.host)}:${node.monitorPort}`)}`,
    'jetstream {',
    `  store_dir: ${q(node.storeDir)}`,
    '}',
    'cluster {',
    `  name: ${q(node.clusterName)}`,
    `  listen: ${q(`${urlHost(node.host)}:${node.clusterPort}`)}`,
    `  routes: [${routes.join(', ')}]`,
    '}',
    '',
  ].join('\n');
}

export function natsClusterNode(config: Config, name: NatsNodeName): NatsClusterNode {
  const own = natsNodePorts(config, name);
  if (own.clusterPort === null) throw new Error(`${name} is not part of a cluster (nats.cluster.nodes is 1)`);
  return {
    // Names must stay the same across restarts: JetStream's peer set knows nodes by them.
    serverName: `${config.nats.cluster.name}-${name}`,
    host: config.nats.host,
    port: own.port,
    monitorPort: own.monitorPort,
    clusterName: config.nats.cluster.name,
    clusterPort: own.clusterPort,
    storeDir: commonPaths(config.home, name).dataDir,
    routePorts: localNatsNodes(config)
      .filter((n) => n !== name)
      .map((n) => natsNodePorts(config, n).clusterPort!),
  };
}

/**
 * One local NATS node. Alone (nats.cluster.nodes 1) it runs with flags as always; in a cluster each
 * node gets a config file (server name, routes to its peers, its own JetStream store).
 */
export function natsServer(config: Config, name: NatsNodeName = 'nats'): LocalServerSpec {
  const { host } = config.nats;
  const { port, monitorPort, clusterPort } = natsNodePorts(config, name);
  const paths = commonPaths(config.home, name);
  const configFile = natsConfigFile(config, name);
  const clustered = clusterPort !== null;
  return {
    name,
    executable: 'nats-server',
    marker: clustered ? configFile : paths.dataDir,
    ...paths,
    extraLogFiles: [],
    ports: [
      { setting: name === 'nats' ? 'nats.port' : `nats.port (+${port - config.nats.port} for ${name})`, host, port },
      { setting: name === 'nats' ? 'nats.monitorPort' : `nats.monitorPort (+${monitorPort - config.nats.monitorPort} for ${name})`, host, port: monitorPort },
      ...(clustered ? [{ setting: `nats.cluster.port (+${clusterPort - config.nats.cluster.port} for ${name})`, host, port: clusterPort }] : []),
    ],
    stopSignal: 'SIGTERM',
    async launch(ctx) {
      mkdirSync(paths.dataDir, { recursive: true });
      if (clustered) {
        writeFileSync(configFile, renderNatsClusterConfig(natsClusterNode(config, name)));
        return spawnDetached(ctx.binary, ['-c', configFile], paths.logFile);
      }
      // The monitor listens on `-a` too (no separate http host flag needed), so nothing binds 0.0.0.0.
      const args = ['-js', '-sd', paths.dataDir, '-a', host, '-p', String(port), '-m', String(monitorPort)];
      return spawnDetached(ctx.binary, args, paths.logFile);
    },
    async isReady() {
      // /healthz turns ok only once JetStream is up, not merely when the port is open. A cluster
      // node alone cannot elect a meta leader: it is ready once its JetStream is enabled, and
      // provisioning waits for the meta leader (bus/streams.ts waitForJetStream).
      const query = clustered ? '?js-enabled-only=true' : '';
      try {
        const res = await httpGet(new URL(`http://${urlHost(host)}:${monitorPort}/healthz${query}`), { timeoutMs: 1000 });
        return res.status === 200 && (JSON.parse(res.body) as { status?: string }).status === 'ok';
      } catch {
        return false;
      }
    },
  };
}

/** A cluster node's config file: beside its store dir, so `nats`'s path (its marker) is no prefix of `nats-2`'s. */
export function natsConfigFile(config: Config, name: NatsNodeName): string {
  return `${commonPaths(config.home, name).dataDir}.conf`;
}
