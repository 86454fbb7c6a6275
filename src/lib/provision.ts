import pg from 'pg';
import { ensureBrainSchema } from './brain/schema.js';
import { connectNats } from './bus/connection.js';
import { ensureStreams } from './bus/streams.js';
import type { Config } from './config/schema.js';
import { UnreachableError } from './errors.js';
import { displayAddress, postgresUrl } from './infra/endpoints.js';
import { ensurePostgresDatabase } from './infra/probe.js';
import { createClickHouse, detectDialect } from './store/client.js';
import { ensureSchema } from './store/tables.js';

/** What provisioning created; all-empty `created` means the platform was already in place. */
export interface ProvisionReport {
  streams: { created: string[]; updated: string[]; unchanged: string[] };
  clickhouse: { server: 'hot' | 'cold'; database: string; version: string; created: string[]; existing: string[]; migrated: string[] }[];
  postgres: { databaseCreated: boolean; created: string[]; existing: string[] };
  changed: boolean;
}

/**
 * Streams, ClickHouse databases and tables (rendered for each server's version), and the brain's
 * PostgreSQL schema. Idempotent: safe on every `init` and `start`.
 */
export async function provision(config: Config): Promise<ProvisionReport> {
  const nc = await connectNats(config, 'provision');
  let streams;
  try {
    // No API check here: a cluster just started answers only once it has a meta leader, which ensureStreams waits for.
    streams = await ensureStreams(await nc.jetstreamManager({ checkAPI: false }), config);
  } finally {
    await nc.close();
  }

  const clickhouse: ProvisionReport['clickhouse'] = [];
  for (const server of ['hot', 'cold'] as const) {
    const spec = config.clickhouse[server];
    const client = createClickHouse(spec);
    try {
      const dialect = await detectDialect(client).catch((err: unknown) => {
        throw new UnreachableError(`ClickHouse ${server}`, spec.url ? displayAddress(spec.url) : `${spec.host}:${spec.httpPort}`, { cause: err });
      });
      const r = await ensureSchema(client, spec.database, dialect);
      clickhouse.push({ server, database: spec.database, version: dialect.version, ...r });
    } finally {
      await client.close();
    }
  }

  const databaseCreated = await ensurePostgresDatabase(config);
  const pool = new pg.Pool({ connectionString: postgresUrl(config), max: 1, connectionTimeoutMillis: 5000 });
  // pool.end() can resolve before the last socket has closed; when init then stops the server, the
  // dropped idle connection makes the pool emit 'error', which without a listener kills the CLI.
  // A query that fails still rejects and is reported below.
  pool.on('error', () => undefined);
  let brain;
  try {
    brain = await ensureBrainSchema(pool).catch((err: unknown) => {
      throw new UnreachableError('PostgreSQL', displayAddress(postgresUrl(config)), { cause: err });
    });
  } finally {
    await pool.end();
  }

  const changed =
    streams.created.length + streams.updated.length + brain.created.length + clickhouse.reduce((n, c) => n + c.created.length + c.migrated.length, 0) > 0 ||
    databaseCreated;
  return { streams, clickhouse, postgres: { databaseCreated, ...brain }, changed };
}
