import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { snapshotRateLimits } from '../../src/lib/feeds/snapshot-pacing.js';
import { loadConfig } from '../../src/lib/config/load.js';
import { VENUE_DATA_TYPES, VENUES } from '../../src/lib/config/schema.js';
import { ConfigError } from '../../src/lib/errors.js';

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'mprism-config-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe('loadConfig', () => {
  it('gives the documented defaults with no file', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    expect(c.file).toBeNull();
    expect(c.home).toBe(home);
    expect(c.nats.port).toBe(4222);
    expect(c.clickhouse.hot).toMatchObject({ httpPort: 8123, tcpPort: 9000, database: 'mprism_hot' });
    expect(c.clickhouse.cold).toMatchObject({ httpPort: 8124, tcpPort: 9001, database: 'mprism_cold' });
    expect([c.storage.port, c.replication.port, c.collector.port, c.brain.port, c.simulator.port]).toEqual([8085, 8086, 8087, 8088, 8090]);
    expect(c.replication).toMatchObject({ windowSeconds: 60, safetyLagSeconds: 15 });
  });

  it('merges the file over the defaults and the environment over the file', () => {
    const file = join(home, 'mprism.yaml');
    writeFileSync(file, 'nats:\n  port: 5000\nredis:\n  url: redis://cache:6380\n');
    const c = loadConfig({ env: { MPRISM_HOME: home, MPRISM_NATS_PORT: '5001', MPRISM_CLICKHOUSE_HOT_HTTP_PORT: '18123' } });
    expect(c.file).toBe(file);
    expect(c.nats.port).toBe(5001);
    expect(c.redis.url).toBe('redis://cache:6380');
    expect(c.clickhouse.hot.httpPort).toBe(18123);
    expect(c.nats.monitorPort).toBe(8222);
  });

  it('keeps both ClickHouse tiers single-server by default, with no ZooKeeper needed', async () => {
    const { needsLocalZooKeeper } = await import('../../src/lib/infra/endpoints.js');
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    expect([c.clickhouse.hot.replication, c.clickhouse.cold.replication]).toEqual([null, null]);
    expect(needsLocalZooKeeper(c)).toBe(false);
  });

  it('accepts a replicated local tier, which needs the local ZooKeeper unless an ensemble is configured', async () => {
    const { needsLocalZooKeeper, zookeeperServers } = await import('../../src/lib/infra/endpoints.js');
    const file = join(home, 'mprism.yaml');
    const replicated = 'clickhouse:\n  hot:\n    replication:\n      interserverPort: 9009\n      replicas:\n        - { url: null, host: 127.0.0.1, httpPort: 8125, tcpPort: 9002, interserverPort: 9010 }\n';
    writeFileSync(file, replicated);
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    expect(c.clickhouse.hot.replication?.replicas).toHaveLength(1);
    expect(needsLocalZooKeeper(c)).toBe(true);
    expect(zookeeperServers(c)).toEqual([{ host: '127.0.0.1', port: 2181 }]);
    writeFileSync(file, `${replicated}  zookeeper:\n    servers: [zk-1:2181, zk-2:2182]\n`);
    const ensemble = loadConfig({ env: { MPRISM_HOME: home } });
    expect(needsLocalZooKeeper(ensemble)).toBe(false);
    expect(zookeeperServers(ensemble)).toEqual([{ host: 'zk-1', port: 2181 }, { host: 'zk-2', port: 2182 }]);
  });

  it('refuses a replicated tier mixing local and external replicas, and replicated tiers sharing a database', () => {
    const file = join(home, 'mprism.yaml');
    writeFileSync(file, 'clickhouse:\n  hot:\n    replication:\n      interserverPort: 9009\n      replicas:\n        - { url: "http://ch-2:8123", host: 127.0.0.1, httpPort: 8125, tcpPort: 9002, interserverPort: 9010 }\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home } })).toThrow(/clickhouse\.hot\.replication\.replicas\.0\.url: must be null like the tier's url/);
    const replication = '    replication: { interserverPort: 9009, replicas: [{ url: null, host: 127.0.0.1, httpPort: 8125, tcpPort: 9002, interserverPort: 9010 }] }\n';
    writeFileSync(file, `clickhouse:\n  hot:\n    database: same\n${replication}  cold:\n    database: same\n${replication}`);
    expect(() => loadConfig({ env: { MPRISM_HOME: home } })).toThrow(/clickhouse\.cold\.database: replicated hot and cold need different database names/);
  });

  it('is frozen', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    expect(Object.isFrozen(c.nats)).toBe(true);
    expect(() => {
      (c.nats as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('reports invalid values as file: path: message', () => {
    const file = join(home, 'bad.yaml');
    writeFileSync(file, 'nats:\n  port: 99999\nstorage:\n  batchSize: -1\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(ConfigError);
    try {
      loadConfig({ env: { MPRISM_HOME: home }, file });
    } catch (err) {
      const lines = (err as Error).message.split('\n');
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${file}: nats\\.port: .+`)));
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${file}: storage\\.batchSize: .+`)));
    }
  });

  it('rejects unknown keys and YAML syntax errors with the file name', () => {
    const file = join(home, 'typo.yaml');
    writeFileSync(file, 'nats:\n  prot: 4222\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(new RegExp(`^${file}: nats: .*prot`));
    writeFileSync(file, 'nats: [unclosed\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(new RegExp(`^${file}: line \\d+: `));
  });

  it('fails clearly when an explicit config file is missing', () => {
    expect(() => loadConfig({ env: { MPRISM_HOME: home, MPRISM_CONFIG: join(home, 'nope.yaml') } })).toThrow(/nope\.yaml: cannot read/);
  });

  it('enables every venue x data type of the coverage by default, and refuses a data type a venue does not offer', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    for (const venue of VENUES) {
      expect([venue, c.collector.venues[venue].enabled, [...c.collector.venues[venue].dataTypes].sort()]).toEqual([venue, true, [...VENUE_DATA_TYPES[venue]].sort()]);
    }
    const file = join(home, 'more.yaml');
    writeFileSync(file, 'collector:\n  venues:\n    okx_spot:\n      dataTypes: [trade, funding_rate]\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(
      `${file}: collector.venues.okx_spot.dataTypes.1: okx_spot does not offer funding_rate (it offers orderbook, trade)`,
    );
  });

  it('refuses a book snapshot floor above the ceiling, and defaults it to no more than the ceiling', () => {
    const file = join(home, 'books.yaml');
    writeFileSync(file, 'collector:\n  orderbook:\n    maxSnapshotsPerSecond: 0.5\n');
    const lowCeiling = loadConfig({ env: { MPRISM_HOME: home }, file }).collector.orderbook;
    expect(snapshotRateLimits(lowCeiling)).toEqual({ max: 0.5, min: 0.5 });
    expect(snapshotRateLimits(loadConfig({ env: { MPRISM_HOME: home } }).collector.orderbook)).toEqual({ max: 10, min: 1 });
    writeFileSync(file, 'collector:\n  orderbook:\n    maxSnapshotsPerSecond: 0.5\n    minSnapshotsPerSecond: 2\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(
      `${file}: collector.orderbook.minSnapshotsPerSecond: minSnapshotsPerSecond must not exceed maxSnapshotsPerSecond`,
    );
    writeFileSync(file, 'collector:\n  orderbook:\n    minSnapshotsPerSecond: 0.01\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(/collector\.orderbook\.minSnapshotsPerSecond: /);
  });

  it('refuses an OKX swap whose sizes cannot be told in coins (inverse), naming the entry', () => {
    const file = join(home, 'inverse.yaml');
    writeFileSync(file, 'collector:\n  venues:\n    okx_derivatives:\n      symbols: [BTC-USDT-SWAP, BTC-USD-SWAP]\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(
      `${file}: collector.venues.okx_derivatives.symbols.1: BTC-USD-SWAP is not a linear OKX swap (<BASE>-USDT-SWAP or <BASE>-USDC-SWAP)`,
    );
    writeFileSync(file, 'collector:\n  venues:\n    okx_derivatives:\n      symbols: [ETH-USDC-SWAP]\n');
    expect(loadConfig({ env: { MPRISM_HOME: home }, file }).collector.venues.okx_derivatives.symbols).toEqual(['ETH-USDC-SWAP']);
  });

  it('refuses a cold that keeps less than hot, and duplicate task names, naming the key', () => {
    const file = join(home, 'retention.yaml');
    writeFileSync(file, 'retention:\n  hotDays: 7\n  coldDays: 3\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(`${file}: retention.coldDays: must be at least hotDays (7), or null to keep everything`);
    writeFileSync(file, 'brain:\n  tasks:\n    - { name: a, cron: "* * * * *", action: health }\n    - { name: a, cron: "* * * * *", action: repair }\n');
    expect(() => loadConfig({ env: { MPRISM_HOME: home }, file })).toThrow(`${file}: brain.tasks.1.name: duplicate task name a`);
  });
});
