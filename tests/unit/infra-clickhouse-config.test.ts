import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { clickhouseLayout, renderClickHouseConfig } from '../../src/lib/infra/clickhouse-server.js';
import { renderZooKeeperConfig } from '../../src/lib/infra/zookeeper-server.js';
import type { ClickHouseServerConfig } from '../../src/lib/config/schema.js';

const server: ClickHouseServerConfig = {
  url: null,
  host: '127.0.0.1',
  httpPort: 18123,
  tcpPort: 19000,
  database: 'mprism_hot',
  user: 'default',
  password: '',
  replication: null,
};

/** Checks that every element is closed in order (the renderer uses no attributes or self-closing tags). */
function assertBalanced(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.replace(/<\?xml[^>]*\?>/, '').replace(/<!--[\s\S]*?-->/g, '').matchAll(/<(\/?)([A-Za-z_][\w.-]*)>/g)) {
    const [, closing, name] = m;
    if (closing) expect(stack.pop(), `closing </${name}>`).toBe(name);
    else stack.push(name as string);
  }
  expect(stack).toEqual([]);
}

const tag = (xml: string, name: string) => [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1]);

describe('renderClickHouseConfig', () => {
  const layout = clickhouseLayout('/home/x/.mprism/data/clickhouse-hot');
  const xml = renderClickHouseConfig(server, layout);

  it('renders well-formed XML under <yandex>', () => {
    assertBalanced(xml);
    expect(xml).toMatch(/<yandex>[\s\S]*<\/yandex>\s*$/);
  });

  it('binds the configured host and ports and opens no interserver port (two instances share a machine)', () => {
    expect(tag(xml, 'listen_host')).toEqual(['127.0.0.1']);
    expect(tag(xml, 'http_port')).toEqual(['18123']);
    expect(tag(xml, 'tcp_port')).toEqual(['19000']);
    expect(xml).not.toContain('interserver_http_port');
    expect(xml).not.toContain('https_port');
  });

  it('keeps every path under the data directory, directories ending in a slash', () => {
    expect(tag(xml, 'path')).toEqual(['/home/x/.mprism/data/clickhouse-hot/']);
    expect(tag(xml, 'tmp_path')).toEqual(['/home/x/.mprism/data/clickhouse-hot/tmp/']);
    expect(tag(xml, 'user_files_path')).toEqual(['/home/x/.mprism/data/clickhouse-hot/user_files/']);
    expect(tag(xml, 'format_schema_path')).toEqual(['/home/x/.mprism/data/clickhouse-hot/format_schemas/']);
    expect(tag(xml, 'log')).toEqual(['/home/x/.mprism/data/clickhouse-hot/log/clickhouse-server.log']);
    expect(tag(xml, 'size')).toEqual(['10M']);
    expect(tag(xml, 'count')).toEqual(['3']);
  });

  it('has the settings 18.16 needs: old_parts_lifetime, LowCardinality, mark_cache_size', () => {
    expect(tag(xml, 'old_parts_lifetime')).toEqual(['1']);
    expect(tag(xml, 'allow_experimental_low_cardinality_type')).toEqual(['1']);
    expect(tag(xml, 'mark_cache_size')).toHaveLength(1);
  });

  it('lets the passwordless default user in from loopback only', () => {
    expect(xml).toMatch(/<default>\s*<password><\/password>\s*<networks><ip>127\.0\.0\.1<\/ip><ip>::1<\/ip><\/networks>/);
  });

  it('adds a configured user with a hashed password, never the password itself', () => {
    const withUser = renderClickHouseConfig({ ...server, host: '0.0.0.0', user: 'mprism', password: 's3cret&<' }, layout);
    assertBalanced(withUser);
    expect(withUser).not.toContain('s3cret');
    expect(tag(withUser, 'password_sha256_hex')).toEqual([createHash('sha256').update('s3cret&<').digest('hex')]);
    expect(withUser).toMatch(/<mprism>[\s\S]*<networks><ip>::\/0<\/ip><\/networks>[\s\S]*<\/mprism>/);
    // default stays loopback-only and passwordless even when the server listens on all interfaces.
    expect(withUser).toMatch(/<default>\s*<password><\/password>\s*<networks><ip>127\.0\.0\.1<\/ip><ip>::1<\/ip><\/networks>/);
  });

  it('escapes XML special characters in paths', () => {
    const odd = renderClickHouseConfig(server, clickhouseLayout('/tmp/a&b<c>'));
    assertBalanced(odd);
    expect(tag(odd, 'path')).toEqual(['/tmp/a&amp;b&lt;c&gt;/']);
  });
});

describe('renderClickHouseConfig for a replica of a replicated tier', () => {
  const layout = clickhouseLayout('/home/x/.mprism/data/clickhouse-hot-2');
  const replica = { replicaName: 'hot-2', interserverPort: 19010, zookeeper: [{ host: '127.0.0.1', port: 12181 }, { host: 'zk-2', port: 2181 }] };
  const xml = renderClickHouseConfig(server, layout, replica);

  it('adds an interserver port on the listen host, the ZooKeeper nodes, and shard/replica macros', () => {
    assertBalanced(xml);
    expect(tag(xml, 'interserver_http_port')).toEqual(['19010']);
    expect(tag(xml, 'interserver_http_host')).toEqual(['127.0.0.1']);
    expect(xml).toMatch(/<zookeeper>\s*<node><host>127\.0\.0\.1<\/host><port>12181<\/port><\/node>\s*<node><host>zk-2<\/host><port>2181<\/port><\/node>/);
    expect(tag(xml, 'shard')).toEqual(['01']);
    expect(tag(xml, 'replica')).toEqual(['hot-2']);
  });

  it('leaves a single server as it was', () => {
    const single = renderClickHouseConfig(server, layout);
    expect(single).not.toMatch(/zookeeper|macros|interserver/);
    expect(xml.replace(/\n  <!-- Replicated tier[\s\S]*<\/macros>/, '')).toBe(single);
  });
});

describe('renderZooKeeperConfig', () => {
  it('binds the client port to the configured (loopback) address and turns the AdminServer off', () => {
    const cfg = renderZooKeeperConfig('127.0.0.1', 12181, '/home/x/.mprism/data/zookeeper/data');
    expect(cfg).toContain('clientPort=12181\n');
    expect(cfg).toContain('clientPortAddress=127.0.0.1\n');
    expect(cfg).toContain('admin.enableServer=false\n');
    expect(cfg).toContain('dataDir=/home/x/.mprism/data/zookeeper/data\n');
    expect(cfg).toContain('4lw.commands.whitelist=srvr\n');
  });
});
