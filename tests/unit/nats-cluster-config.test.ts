import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { streamReplicas } from '../../src/lib/bus/streams.js';
import { loadConfig } from '../../src/lib/config/load.js';
import { ConfigError } from '../../src/lib/errors.js';
import { isExternal, natsNodePorts, natsUrl } from '../../src/lib/infra/endpoints.js';
import { natsClusterNode, natsServer, renderNatsClusterConfig } from '../../src/lib/infra/nats-server.js';
import { locateBinary } from '../../src/lib/infra/binaries.js';
import { activeDaemons, activeInfra, daemonKind, daemonPort, homePaths } from '../../src/lib/paths.js';

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'mprism-nats-cluster-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

function configWith(yaml: string) {
  const file = join(home, 'mprism.yaml');
  writeFileSync(file, yaml);
  return loadConfig({ env: { MPRISM_HOME: home, MPRISM_CONFIG: file } });
}

const CLUSTER = 'nats:\n  port: 4300\n  monitorPort: 8300\n  cluster: { nodes: 3, port: 6300 }\n';

describe('a single NATS node (the default)', () => {
  it('is what ran before: one server, flags only, one URL, one replica', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    expect(c.nats.cluster).toEqual({ nodes: 1, name: 'mprism', port: 6222 });
    expect(activeInfra(c)).toEqual(['nats', 'clickhouse-hot', 'clickhouse-cold', 'redis', 'postgres']);
    expect(natsUrl(c)).toBe('nats://127.0.0.1:4222');
    expect(natsNodePorts(c, 'nats')).toEqual({ port: 4222, monitorPort: 8222, clusterPort: null });
    expect(streamReplicas(c)).toBe(1);
    const spec = natsServer(c, 'nats');
    expect(spec.marker).toBe(homePaths(home).dataDir('nats'));
    expect(spec.ports.map((p) => p.port)).toEqual([4222, 8222]);
  });
});

describe('a local 3-node cluster', () => {
  it('gives node k the configured ports plus k, and every client all three URLs', () => {
    const c = configWith(CLUSTER);
    expect(activeInfra(c).slice(0, 3)).toEqual(['nats', 'nats-2', 'nats-3']);
    expect(natsNodePorts(c, 'nats-3')).toEqual({ port: 4302, monitorPort: 8302, clusterPort: 6302 });
    expect(natsUrl(c)).toBe('nats://127.0.0.1:4300,nats://127.0.0.1:4301,nats://127.0.0.1:4302');
    expect(streamReplicas(c)).toBe(3);
    expect(natsServer(c, 'nats-2').ports.map((p) => [p.setting, p.port])).toEqual([
      ['nats.port (+1 for nats-2)', 4301],
      ['nats.monitorPort (+1 for nats-2)', 8301],
      ['nats.cluster.port (+1 for nats-2)', 6301],
    ]);
  });

  it('routes each node to the other two, with its own name and store', () => {
    const c = configWith(CLUSTER);
    const node = natsClusterNode(c, 'nats-2');
    expect(node).toEqual({
      serverName: 'mprism-nats-2',
      host: '127.0.0.1',
      port: 4301,
      monitorPort: 8301,
      clusterName: 'mprism',
      clusterPort: 6301,
      storeDir: homePaths(home).dataDir('nats-2'),
      routePorts: [6300, 6302],
    });
    const text = renderNatsClusterConfig(node);
    expect(text).toContain('server_name: "mprism-nats-2"');
    expect(text).toContain('listen: "127.0.0.1:4301"');
    expect(text).toContain('http: "127.0.0.1:8301"');
    expect(text).toContain(`store_dir: ${JSON.stringify(homePaths(home).dataDir('nats-2'))}`);
    expect(text).toContain('routes: ["nats-route://127.0.0.1:6300", "nats-route://127.0.0.1:6302"]');
  });

  it('renders a file nats-server accepts (nats-server -t), also for paths with spaces and quotes', () => {
    const binary = locateBinary('nats').path;
    if (binary === null) throw new Error('nats-server not installed: mprism init --binaries-only --install');
    const c = configWith(CLUSTER);
    const node = { ...natsClusterNode(c, 'nats'), storeDir: join(home, 'a dir "with" quotes') };
    const file = join(home, 'node.conf');
    writeFileSync(file, renderNatsClusterConfig(node));
    expect(() => execFileSync(binary, ['-t', '-c', file], { stdio: 'pipe' })).not.toThrow();
    writeFileSync(file, `${renderNatsClusterConfig(node)}\nbogus {{{`);
    expect(() => execFileSync(binary, ['-t', '-c', file], { stdio: 'pipe' })).toThrow();
  });

  it("tells nodes apart by their config file, so `nats`'s marker is not found in `nats-2`'s command line", () => {
    const c = configWith(CLUSTER);
    const one = natsServer(c, 'nats');
    const two = natsServer(c, 'nats-2');
    expect(`nats-server -c ${two.marker}`.includes(one.marker)).toBe(false);
  });
});

describe('cluster settings', () => {
  it('refuses two nodes, with the reason', () => {
    expect(() => configWith('nats:\n  cluster: { nodes: 2 }\n')).toThrow(ConfigError);
    expect(() => configWith('nats:\n  cluster: { nodes: 2 }\n')).toThrow(/1 or 3/);
  });

  it('takes an external cluster as comma-separated URLs: no local node, replicas from nodes', () => {
    const c = configWith('nats:\n  url: nats://a:4222,nats://b:4222,nats://c:4222\n  cluster: { nodes: 3 }\n');
    expect(natsUrl(c)).toBe('nats://a:4222,nats://b:4222,nats://c:4222');
    expect(isExternal(c, 'nats')).toBe(true);
    expect(activeInfra(c)).toEqual(['nats', 'clickhouse-hot', 'clickhouse-cold', 'redis', 'postgres']);
    expect(streamReplicas(c)).toBe(3);
    expect(() => configWith('nats:\n  url: nats://a:4222,not a url\n')).toThrow(/URLs separated by commas/);
  });
});

describe('storage instances', () => {
  it('runs storage, storage-2... on storage.port + k, all as the storage daemon', () => {
    const c = configWith('storage:\n  port: 9100\n  instances: 3\n');
    expect(activeDaemons(c)).toEqual(['simulator', 'storage', 'storage-2', 'storage-3', 'replication', 'collector', 'brain']);
    expect(['storage', 'storage-2', 'storage-3'].map((n) => daemonPort(c, n as 'storage'))).toEqual([9100, 9101, 9102]);
    expect(daemonKind('storage-3')).toBe('storage');
    expect(daemonPort(c, 'brain')).toBe(c.brain.port);
  });

  it('defaults to one, and refuses more than four', () => {
    expect(activeDaemons(loadConfig({ env: { MPRISM_HOME: home } }))).toEqual(['simulator', 'storage', 'replication', 'collector', 'brain']);
    expect(() => configWith('storage:\n  instances: 5\n')).toThrow(ConfigError);
  });
});

describe('ports computed for extra nodes and instances', () => {
  it("refuses storage-2 on replication's port (the defaults with instances: 2), naming both", () => {
    expect(() => configWith('storage:\n  instances: 2\n')).toThrow(/storage-2 \(storage.port \+ 1\) and replication.port both use port 8086/);
  });

  it('accepts them once moved, and leaves clashes between plain settings to the servers as before', () => {
    expect(configWith('storage:\n  port: 8095\n  instances: 4\n').storage.instances).toBe(4);
    expect(() => configWith(CLUSTER)).not.toThrow();
    expect(() => configWith('nats:\n  cluster: { nodes: 3, port: 8223 }\n')).toThrow(/nats \(nats.cluster.port \+ 0\) and nats-2 \(nats.monitorPort \+ 1\) both use port 8223/);
    expect(configWith('redis:\n  port: 8085\n').redis.port).toBe(8085);
  });
});
