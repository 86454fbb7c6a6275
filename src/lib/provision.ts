import pg from 'pg';
import { ensureBrainSchema } from './brain/schema.js';
import { connectNats } from './bus/connection.js';
import { ensureStreams } from './bus/streams.js';
import type { Config } from './config/schema.js';
import { UnreachableError } from './errors.js';
import { displayAddress, postgresUrl } from './infra/endpoints.js';
import { ensurePostgresDatabase } from './infra/probe.js';
import { createClickHouse, detectDialect } from './store/client.js';
import { tierReplicas } from './store/replicas.js';
import { engineFor, ensureSchema } from './store/tables.js';
import { ensureWatermarksTable } from './store/watermarks.js';

/** What provisioning created; all-empty `created` means the platform was already in place. */
export interface ProvisionReport {
  streams: { created: string[]; updated: string[]; unchanged: string[] };
  clickhouse: { server: 'hot' | 'cold'; /** 1-based, on a replicated tier only. */ replica?: number; database: string; version: string; created: string[]; existing: string[]; migrated: string[] }[];
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

  const clickhouse = await ensureClickHouseSchemas(config);

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

/** Databases and tables on both tiers, on every replica of a replicated tier (see ensureSchema). */
export async function ensureClickHouseSchemas(config: Config): Promise<ProvisionReport['clickhouse']> {
  const clickhouse: ProvisionReport['clickhouse'] = [];
  for (const server of ['hot', 'cold'] as const) {
    // A replicated tier: every replica creates its own replica of each table (same ZooKeeper path).
    const replicas = tierReplicas(config.clickhouse[server]);
    for (const [i, spec] of replicas.entries()) {
      const client = createClickHouse(spec);
      const name = replicas.length === 1 ? `ClickHouse ${server}` : `ClickHouse ${server} replica ${i + 1}`;
      try {
        const dialect = await detectDialect(client).catch((err: unknown) => {
          throw new UnreachableError(name, spec.url ? displayAddress(spec.url) : `${spec.host}:${spec.httpPort}`, { cause: err });
        });
        const r = await ensureSchema(client, spec.database, dialect, engineFor(spec));
        // Replication's watermarks, on every cold replica (a replicated table is created on each).
        if (server === 'cold') await ensureWatermarksTable(client, spec.database, engineFor(spec));
        clickhouse.push({ server, ...(replicas.length === 1 ? {} : { replica: i + 1 }), database: spec.database, version: dialect.version, ...r });
      } finally {
        await client.close();
      }
    }
  }
  return clickhouse;
}
