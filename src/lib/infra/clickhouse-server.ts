import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouseServerConfig, Config } from '../config/schema.js';
import { writeFileAtomic } from '../process-util.js';
import { commonPaths, isLoopback, urlHost, type LocalServerSpec } from './server-spec.js';
import { spawnDetached } from './launch.js';
import { httpGet } from './http-get.js';
import { zookeeperServers } from './endpoints.js';

export interface ClickHouseLayout {
  dataDir: string;
  configFile: string;
  serverLog: string;
  errorLog: string;
}

export function clickhouseLayout(dataDir: string): ClickHouseLayout {
  return {
    dataDir,
    configFile: join(dataDir, 'config.xml'),
    serverLog: join(dataDir, 'log', 'clickhouse-server.log'),
    errorLog: join(dataDir, 'log', 'clickhouse-server.err.log'),
  };
}

const xml = (value: string | number) =>
  String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A directory setting: ClickHouse 18.16 concatenates file names onto these, so they must end in '/'. */
const dir = (path: string) => xml(path.endsWith('/') ? path : `${path}/`);

function userXml(name: string, password: string, networks: readonly string[]): string {
  const secret =
    password === ''
      ? '<password></password>'
      : `<password_sha256_hex>${createHash('sha256').update(password).digest('hex')}</password_sha256_hex>`;
  return [
    `    <${xml(name)}>`,
    `      ${secret}`,
    `      <networks>${networks.map((ip) => `<ip>${xml(ip)}</ip>`).join('')}</networks>`,
    '      <profile>default</profile>',
    '      <quota>default</quota>',
    `    </${xml(name)}>`,
  ].join('\n');
}

/** What a replica of a replicated tier adds to its server config. */
export interface ReplicaSettings {
  /** The {replica} macro: unique per replica of the tier (hot-1, hot-2). */
  replicaName: string;
  /** Where the other replicas fetch parts from this one. */
  interserverPort: number;
  zookeeper: readonly { host: string; port: number }[];
}

/** One shard: a tier's replicas all hold every row. */
export const SHARD_MACRO = '01';

function replicaXml(server: ClickHouseServerConfig, replica: ReplicaSettings): string {
  const nodes = replica.zookeeper.map((n) => `    <node><host>${xml(n.host)}</host><port>${n.port}</port></node>`).join('\n');
  return `
  <!-- Replicated tier: parts are fetched between replicas on this port, tables coordinated by ZooKeeper. -->
  <interserver_http_host>${xml(server.host)}</interserver_http_host>
  <interserver_http_port>${replica.interserverPort}</interserver_http_port>
  <zookeeper>
${nodes}
    <session_timeout_ms>30000</session_timeout_ms>
  </zookeeper>
  <macros>
    <shard>${SHARD_MACRO}</shard>
    <replica>${xml(replica.replicaName)}</replica>
  </macros>`;
}

/**
 * A complete, self-contained server config (users included, so no users.xml is needed) for one
 * instance. A single server gets no interserver_http_port: two instances on one machine would otherwise
 * both want 9009; a replica of a replicated tier gets its own (`replica`).
 */
export function renderClickHouseConfig(server: ClickHouseServerConfig, layout: ClickHouseLayout, replica: ReplicaSettings | null = null): string {
  const loopbackOnly = ['127.0.0.1', '::1'];
  // The built-in `default` user (also what remote() logs in as) never accepts non-loopback clients
  // unless it is the configured user; a configured user may be reached wherever the server listens.
  const configuredNetworks = isLoopback(server.host) ? loopbackOnly : ['::/0'];
  const users =
    server.user === 'default'
      ? userXml('default', server.password, configuredNetworks)
      : [userXml('default', '', loopbackOnly), userXml(server.user, server.password, configuredNetworks)].join('\n');
  return `<?xml version="1.0"?>
<!-- Written by mprism at every start of this server; edits are overwritten. -->
<yandex>
  <logger>
    <level>warning</level>
    <log>${xml(layout.serverLog)}</log>
    <errorlog>${xml(layout.errorLog)}</errorlog>
    <size>10M</size>
    <count>3</count>
  </logger>
  <listen_host>${xml(server.host)}</listen_host>
  <http_port>${server.httpPort}</http_port>
  <tcp_port>${server.tcpPort}</tcp_port>
  <path>${dir(layout.dataDir)}</path>
  <tmp_path>${dir(join(layout.dataDir, 'tmp'))}</tmp_path>
  <user_files_path>${dir(join(layout.dataDir, 'user_files'))}</user_files_path>
  <format_schema_path>${dir(join(layout.dataDir, 'format_schemas'))}</format_schema_path>
  <timezone>UTC</timezone>
  <max_concurrent_queries>100</max_concurrent_queries>
  <!-- Idle keep-alive connections delay shutdown until they time out; @clickhouse/client drops idle sockets after 2.5 s. -->
  <keep_alive_timeout>3</keep_alive_timeout>
  <mark_cache_size>536870912</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <default_profile>default</default_profile>
  <default_database>default</default_database>${replica === null ? '' : replicaXml(server, replica)}
  <merge_tree>
    <!-- Without this, parts of a dropped partition are still on disk at a restart and come back. -->
    <old_parts_lifetime>1</old_parts_lifetime>
  </merge_tree>
  <profiles>
    <default>
      <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
    </default>
  </profiles>
  <users>
${users}
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`;
}

/** The local servers of a tier: the tier's own, then each configured replica (clickhouse-hot-2...). */
export function clickhouseServer(config: Config, name: 'clickhouse-hot' | 'clickhouse-cold'): LocalServerSpec {
  const tier = name === 'clickhouse-hot' ? 'hot' : 'cold';
  return clickhouseReplicaServer(config, tier, 1);
}

/** Replica `index` (1-based) of a tier mprism runs: 1 is the tier's own server, the others its replication.replicas. */
export function clickhouseReplicaServer(config: Config, tier: 'hot' | 'cold', index: number): LocalServerSpec {
  const tierConfig = config.clickhouse[tier];
  const replication = tierConfig.replication;
  const extra = index === 1 ? null : replication?.replicas[index - 2];
  if (index !== 1 && (extra === undefined || extra === null)) throw new RangeError(`clickhouse.${tier} has no replica ${index}`);
  const server: ClickHouseServerConfig = extra ? { ...tierConfig, url: extra.url, host: extra.host, httpPort: extra.httpPort, tcpPort: extra.tcpPort } : tierConfig;
  const name = index === 1 ? (`clickhouse-${tier}` as const) : (`clickhouse-${tier}-${index}` as const);
  const setting = index === 1 ? `clickhouse.${tier}` : `clickhouse.${tier}.replication.replicas[${index - 2}]`;
  const replica: ReplicaSettings | null =
    replication === null
      ? null
      : {
          replicaName: `${tier}-${index}`,
          interserverPort: extra ? extra.interserverPort : replication.interserverPort,
          zookeeper: zookeeperServers(config),
        };
  const paths = commonPaths(config.home, name);
  const layout = clickhouseLayout(paths.dataDir);
  return {
    name,
    executable: 'clickhouse-server',
    marker: layout.configFile,
    ...paths,
    extraLogFiles: [layout.errorLog],
    ports: [
      { setting: `${setting}.httpPort`, host: server.host, port: server.httpPort },
      { setting: `${setting}.tcpPort`, host: server.host, port: server.tcpPort },
      ...(replica === null
        ? []
        : [{ setting: index === 1 ? `clickhouse.${tier}.replication.interserverPort` : `${setting}.interserverPort`, host: server.host, port: replica.interserverPort }]),
    ],
    stopSignal: 'SIGTERM',
    async launch(ctx) {
      mkdirSync(join(paths.dataDir, 'log'), { recursive: true });
      // Rewritten every start so port or user changes in mprism.yaml take effect.
      writeFileAtomic(layout.configFile, renderClickHouseConfig(server, layout, replica));
      return spawnDetached(ctx.binary, [`--config-file=${layout.configFile}`], paths.logFile);
    },
    async isReady() {
      try {
        const res = await httpGet(new URL(`http://${urlHost(server.host)}:${server.httpPort}/ping`), { timeoutMs: 1000 });
        return res.status === 200 && res.body.trim() === 'Ok.';
      } catch {
        return false;
      }
    },
  };
}
