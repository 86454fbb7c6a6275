import { connect } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Config } from '../config/schema.js';
import { ConfigError, UnreachableError, errorMessage } from '../errors.js';
import type { InfraName, NatsNodeName } from '../paths.js';
import { clickhouseUrl, displayAddress, infraUrl, isExternal, natsNodeUrl, natsUrl, postgresUrl, redisUrl } from './endpoints.js';
import type { InfraStatus } from './local-servers.js';
import { httpGet } from './http-get.js';
import { findServerPid } from './server-spec.js';
import { localServerSpec } from './specs.js';

const DEFAULT_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Reads the INFO line a NATS server sends on connect; works before (and without) authentication or TLS. */
function natsInfoVersion(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let buffer = '';
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no INFO from ${host}:${port} within ${timeoutMs} ms`)));
    socket.once('error', fail);
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      const end = buffer.indexOf('\r\n');
      if (end < 0) return;
      socket.destroy();
      const line = buffer.slice(0, end);
      if (!line.startsWith('INFO ')) return reject(new Error(`not a NATS server (first line: ${line.slice(0, 80)})`));
      try {
        const info = JSON.parse(line.slice(5)) as { version?: unknown };
        resolve(typeof info.version === 'string' ? info.version : 'unknown');
      } catch (err) {
        reject(new Error(`malformed NATS INFO: ${errorMessage(err)}`, { cause: err }));
      }
    });
  });
}

async function probeNats(config: Config, name: NatsNodeName, timeoutMs: number): Promise<string> {
  // An external cluster URL may list several servers, one answering is enough; a local node answers for itself.
  const urls = (isExternal(config, name) ? natsUrl(config) : natsNodeUrl(config, name)).split(',').map((u) => u.trim()).filter((u) => u.length > 0);
  let lastError: unknown = new Error('no NATS URL configured');
  for (const raw of urls) {
    const url = new URL(raw.includes('://') ? raw : `nats://${raw}`);
    try {
      return await natsInfoVersion(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port || 4222), timeoutMs);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

async function probeClickHouse(config: Config, name: 'clickhouse-hot' | 'clickhouse-cold', timeoutMs: number): Promise<string> {
  const server = name === 'clickhouse-hot' ? config.clickhouse.hot : config.clickhouse.cold;
  const url = new URL(clickhouseUrl(server));
  // Credentials in the URL win over the config's user; they travel in a Basic header, not the URL.
  const user = url.username ? decodeURIComponent(url.username) : server.user;
  const password = url.username ? decodeURIComponent(url.password) : server.password;
  url.username = '';
  url.password = '';
  url.searchParams.set('query', 'SELECT version()');
  const res = await httpGet(url, {
    timeoutMs,
    headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
  });
  const body = res.body.trim();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${body.split('\n')[0]?.slice(0, 300) ?? ''}`);
  return body;
}

async function probeRedis(config: Config, timeoutMs: number): Promise<string> {
  const client = new Redis(redisUrl(config), {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // Connection errors surface through connect(); without a listener ioredis would also log them.
  client.on('error', () => undefined);
  try {
    await client.connect();
    const info = await client.info('server');
    return /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown';
  } finally {
    client.disconnect();
  }
}

async function withPostgres<T>(connectionString: string, timeoutMs: number, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function probePostgres(config: Config, timeoutMs: number): Promise<string> {
  return withPostgres(postgresUrl(config), timeoutMs, async (client) => {
    const res = await client.query<{ server_version: string }>('SHOW server_version');
    // "15.14 (Debian 15.14-0+deb12u1)" -> "15.14"
    return res.rows[0]?.server_version.split(' ')[0] ?? 'unknown';
  });
}

function probeVersion(config: Config, name: InfraName, timeoutMs: number): Promise<string> {
  switch (name) {
    case 'nats':
    case 'nats-2':
    case 'nats-3':
      return probeNats(config, name, timeoutMs);
    case 'clickhouse-hot':
    case 'clickhouse-cold':
      return probeClickHouse(config, name, timeoutMs);
    case 'redis':
      return probeRedis(config, timeoutMs);
    case 'postgres':
      return probePostgres(config, timeoutMs);
  }
}

/**
 * Is the configured server (external URL or local server) answering, and which version is it?
 * Never throws: failures come back as up=false with the reason.
 */
export async function probeInfra(config: Config, name: InfraName, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<InfraStatus> {
  const external = isExternal(config, name);
  const status: InfraStatus = {
    name,
    mode: external ? 'external' : 'local',
    address: displayAddress(infraUrl(config, name)),
    up: false,
    pid: null,
    version: null,
    error: null,
  };
  try {
    if (!external) status.pid = findServerPid(localServerSpec(config, name));
    status.version = await withTimeout(probeVersion(config, name, timeoutMs), timeoutMs + 500, status.address);
    status.up = true;
  } catch (err) {
    status.error = errorMessage(err) || String((err as { code?: unknown }).code ?? 'unknown error');
  }
  return status;
}

/** Creates the configured database when missing (via the `postgres` maintenance database); true if created. */
export async function ensurePostgresDatabase(config: Config, timeoutMs = 5000): Promise<boolean> {
  const url = new URL(postgresUrl(config));
  const database = decodeURIComponent(url.pathname.slice(1)) || config.postgres.database;
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  client.on('error', () => undefined);
  try {
    try {
      await client.connect();
    } catch (err) {
      throw new UnreachableError('postgres', displayAddress(url.toString()), { cause: err });
    }
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount !== null && found.rowCount > 0) return false;
    await client.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
    return true;
  } catch (err) {
    if (err instanceof UnreachableError) throw err;
    // Another process created it between our check and our CREATE.
    if ((err as { code?: string }).code === '42P04') return false;
    throw new ConfigError(`postgres: cannot create database "${database}": ${errorMessage(err)}`, { cause: err });
  } finally {
    await client.end().catch(() => undefined);
  }
}
