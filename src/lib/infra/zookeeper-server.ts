import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { writeFileAtomic } from '../process-util.js';
import { ZOOKEEPER_JAR } from './binaries.js';
import { spawnDetached } from './launch.js';
import { tcpProbe } from './tcp-probe.js';
import { commonPaths, type LocalServerSpec } from './server-spec.js';

/** Debian ships slf4j bindings apart from zookeeper.jar; without one ZooKeeper logs nothing at all. */
const SLF4J_SIMPLE = '/usr/share/java/slf4j-simple.jar';

/** Standalone ZooKeeper for the local replicas: loopback client port, no AdminServer (it would take 8080). */
export function renderZooKeeperConfig(host: string, port: number, dataDir: string): string {
  return [
    '# Written by mprism at every start of this server; edits are overwritten.',
    'tickTime=2000',
    `dataDir=${dataDir}`,
    `clientPort=${port}`,
    `clientPortAddress=${host}`,
    'maxClientCnxns=0',
    'admin.enableServer=false',
    // srvr answers the readiness check; the other four-letter words stay off.
    '4lw.commands.whitelist=srvr',
    // Old snapshots and logs are purged hourly, keeping 3, so a long-running home does not fill up.
    'autopurge.snapRetainCount=3',
    'autopurge.purgeInterval=1',
    '',
  ].join('\n');
}

/**
 * ZooKeeper's four-letter `srvr`: true once it serves requests (it then answers with its version; before
 * its database is loaded, with "not currently serving requests"). `ruok` says imok earlier than that.
 */
export function zookeeperServing(host: string, port: number, timeoutMs: number): Promise<boolean> {
  // ZooKeeper answers and closes: the whole reply is there at the end.
  return tcpProbe(host, port, 'srvr', timeoutMs, (reply, ended) => (ended ? reply.startsWith('Zookeeper version:') : null));
}

export function zookeeperServer(config: Config): LocalServerSpec {
  const { host, port } = config.clickhouse.zookeeper;
  const paths = commonPaths(config.home, 'zookeeper');
  const configFile = join(paths.dataDir, 'zoo.cfg');
  return {
    name: 'zookeeper',
    executable: 'java',
    marker: configFile,
    ...paths,
    extraLogFiles: [],
    ports: [{ setting: 'clickhouse.zookeeper.port', host, port }],
    stopSignal: 'SIGTERM',
    async launch(ctx) {
      const data = join(paths.dataDir, 'data');
      mkdirSync(data, { recursive: true });
      writeFileAtomic(configFile, renderZooKeeperConfig(host, port, data));
      const classpath = [ZOOKEEPER_JAR, ...(existsSync(SLF4J_SIMPLE) ? [SLF4J_SIMPLE] : [])].join(':');
      return spawnDetached(
        ctx.binary,
        [
          // A coordination server for a handful of tables: a small heap, not a quarter of the machine.
          '-Xmx256m',
          '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
          `-Dzookeeper.log.dir=${paths.dataDir}`,
          '-cp',
          classpath,
          'org.apache.zookeeper.server.ZooKeeperServerMain',
          configFile,
        ],
        paths.logFile,
      );
    },
    isReady: () => zookeeperServing(host, port, 1000),
  };
}
