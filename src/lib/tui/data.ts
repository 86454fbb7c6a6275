import type { AlertView } from '../brain/alerts/store.js';
import { fetchDaemonHealth } from '../daemon-health.js';
import { isObject } from '../json-guards.js';
import { collectStatus } from '../checks/status.js';
import type { ProcessRow, StatusReport } from '../checks/status-types.js';
import type { ClickHouseServerConfig, Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { InfraStatus } from '../infra/local-servers.js';
import { probeInfra } from '../infra/probe.js';
import { INFRA_NAMES, activeInfra, isNatsNode, type InfraName } from '../paths.js';
import { createClickHouse, type ClickHouseClient } from '../store/client.js';
import { str } from '../store/sql.js';
import { TABLES } from '../store/tables.js';

export type Side = 'hot' | 'cold';

/** Row counts and insert rates of one table; null where the side could not be read. */
export interface TableActivity {
  table: string;
  hotRows: number | null;
  coldRows: number | null;
  /** Rows per second since the previous refresh; null on the first refresh or when a count is missing. */
  hotRate: number | null;
  coldRate: number | null;
  /** Replication lag reported by the replication daemon; null when it does not report one. */
  lagSeconds: number | null;
}

/** The fields of an open alert the dashboard shows (older brains send no ackedAt). */
export type AlertItem = Pick<AlertView, 'severity' | 'source' | 'message'> & Partial<Pick<AlertView, 'id' | 'ackedAt'>>;

export interface AlertsSummary {
  open: number;
  /** The open alerts, most severe first (as the brain orders them). */
  items: AlertItem[];
}

/** What the dashboard shows of the brain's history initialization (GET /api/v1/system/init/status). */
export interface InitProgress {
  enabled: boolean;
  pending: boolean;
  finishedAt: string | null;
  stages: { stage: string; state: string; done: number; total: number; errors: number }[];
}

/** Everything one dashboard frame shows. */
export interface TuiSnapshot {
  at: string;
  processes: ProcessRow[];
  infra: InfraStatus[];
  tables: TableActivity[];
  /** null when the brain API is unreachable. */
  alerts: AlertsSummary | null;
  /** null when the brain does not report history initialization (or is unreachable). */
  init: InitProgress | null;
  /** One line per source that could not be read, e.g. "clickhouse-hot: connect ECONNREFUSED". */
  errors: string[];
}

/** Where a refresh reads from; injected so the refresh logic is testable without servers. */
export interface TuiSources {
  status(): Promise<StatusReport>;
  probe(name: InfraName): Promise<InfraStatus>;
  /** The servers to probe (activeInfra of the config); default: a single NATS node and the rest. */
  infraNames?: readonly InfraName[];
  /** table -> row count on one side. */
  rowCounts(side: Side): Promise<Map<string, number>>;
  replication(): Promise<ReplicationView>;
  alerts(): Promise<AlertItem[]>;
  /** null when the brain has no init status route (404). */
  initStatus(): Promise<InitProgress | null>;
  /** Epoch ms. */
  now(): number;
}

/** Rows per second between two counts; never negative (merges and retention shrink counts). */
export function ratePerSecond(previous: number | null, current: number | null, elapsedMs: number): number | null {
  if (previous === null || current === null || elapsedMs <= 0) return null;
  return Math.max(0, ((current - previous) * 1000) / elapsedMs);
}


/** What the dashboard takes from the replication daemon's /health. */
export interface ReplicationView {
  /** table -> seconds behind; tables without a watermark yet are absent. */
  lag: Map<string, number>;
  /** The daemon's last copy error while it is unhealthy, first line only, e.g. "trades: Code: 81 ...". */
  lastError: string | null;
}

/** Longest replication error shown: the first line of a ClickHouse exception is enough to act on. */
const MAX_ERROR_CHARS = 200;

/**
 * Reads the replication daemon's /health body (`{ ok, lagSeconds: { table: seconds | null }, lastError:
 * { table, message, at } | null }`). Unexpected shapes yield nothing rather than an error.
 */
export function parseReplicationHealth(body: unknown): ReplicationView {
  const view: ReplicationView = { lag: new Map(), lastError: null };
  if (!isObject(body)) return view;
  if (isObject(body.lagSeconds)) {
    for (const [table, value] of Object.entries(body.lagSeconds)) {
      if (typeof value === 'number' && Number.isFinite(value)) view.lag.set(table, value);
    }
  }
  const err = body.lastError;
  // Once replication is healthy again its last error is history, not something to act on.
  if (body.ok !== true && isObject(err) && typeof err.message === 'string') {
    const line = err.message.split('\n')[0]!.trim().slice(0, MAX_ERROR_CHARS);
    view.lastError = typeof err.table === 'string' ? `${err.table}: ${line}` : line;
  }
  return view;
}

const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * Reads the brain's init status body (`{ pending, finishedAt, stages: [{ stage, state, items: { done,
 * skipped, total }, errors: [...] }] }`). Unexpected shapes yield null rather than an error.
 */
export function parseInitStatus(body: unknown): InitProgress | null {
  if (!isObject(body) || !Array.isArray(body.stages)) return null;
  const stages = body.stages.filter(isObject).map((s) => {
    const items = isObject(s.items) ? s.items : {};
    return {
      stage: typeof s.stage === 'string' ? s.stage : '?',
      state: typeof s.state === 'string' ? s.state : '?',
      // Skipped items are settled too: a stage is as far along as its done and skipped items.
      done: count(items.done) + count(items.skipped),
      total: count(items.total),
      errors: Array.isArray(s.errors) ? s.errors.length : 0,
    };
  });
  return { enabled: body.enabled !== false, pending: body.pending === true, finishedAt: typeof body.finishedAt === 'string' ? body.finishedAt : null, stages };
}

/** Per-request bound: one hung server must not freeze the dashboard. */
const SOURCE_TIMEOUT_MS = 2_000;

async function getJson(url: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(SOURCE_TIMEOUT_MS) });
  } catch (err) {
    // fetch() only says "fetch failed"; the useful part (ECONNREFUSED, timeout) is in the cause.
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const code = (cause as { code?: unknown }).code;
    const why =
      err instanceof Error && err.name === 'TimeoutError'
        ? ` (no answer within ${SOURCE_TIMEOUT_MS} ms)`
        : typeof code === 'string'
          ? ` (${code})`
          : '';
    throw new Error(`unreachable at ${new URL(url).host}${why}`, { cause: err });
  }
  const body: unknown = await res.json();
  // /health answers 503 with a JSON body when degraded: the body is still what we want to show.
  if (!res.ok && res.status !== 503) throw new Error(`HTTP ${res.status}`);
  return body;
}

async function partRows(client: ClickHouseClient, server: ClickHouseServerConfig): Promise<Map<string, number>> {
  // Active-part row totals from system.parts: metadata only, so a 1 s refresh costs nothing even on
  // billions of rows, and one query covers every table (missing tables are simply absent).
  const result = await client.query({
    query: `SELECT table, toString(sum(rows)) AS rows FROM system.parts
             WHERE database = ${str(server.database)} AND active GROUP BY table`,
    format: 'JSONEachRow',
    abort_signal: AbortSignal.timeout(SOURCE_TIMEOUT_MS),
  });
  const rows = await result.json<{ table: string; rows: string }>();
  return new Map(rows.map((r) => [r.table, Number(r.rows)]));
}

/** Sources backed by the configured servers and daemons. Call close() when done. */
export function liveSources(config: Config): TuiSources & { close(): Promise<void> } {
  const clients: Record<Side, ClickHouseClient> = {
    hot: createClickHouse(config.clickhouse.hot),
    cold: createClickHouse(config.clickhouse.cold),
  };
  return {
    status: () => collectStatus(config),
    probe: (name) => probeInfra(config, name, SOURCE_TIMEOUT_MS / 2),
    infraNames: activeInfra(config),
    rowCounts: (side) => partRows(clients[side], config.clickhouse[side]),
    replication: async () => {
      const answer = await fetchDaemonHealth(config.replication.port, SOURCE_TIMEOUT_MS);
      if (!answer.answered) throw new Error(answer.error);
      return parseReplicationHealth(answer.body);
    },
    alerts: async () => {
      const body = await getJson(`http://127.0.0.1:${config.brain.port}/api/v1/alerts`);
      if (!isObject(body) || !Array.isArray(body.alerts)) throw new Error('unexpected answer from /api/v1/alerts');
      return body.alerts as AlertItem[];
    },
    initStatus: async () => {
      let res: Response;
      try {
        res = await fetch(`http://127.0.0.1:${config.brain.port}/api/v1/system/init/status`, { signal: AbortSignal.timeout(SOURCE_TIMEOUT_MS) });
      } catch {
        return null; // the brain being unreachable is already said by the alerts line
      }
      if (res.status === 404) return null;
      if (!res.ok) throw new Error(`HTTP ${res.status} from /api/v1/system/init/status`);
      return parseInitStatus(await res.json());
    },
    now: () => Date.now(),
    close: async () => {
      await Promise.all([clients.hot.close(), clients.cold.close()]);
    },
  };
}

/** Table names shown in the dashboard, in spec order. */
export const DASHBOARD_TABLES: readonly string[] = TABLES.map((t) => t.table);

/**
 * Builds successive snapshots. Keeps the previous counts to turn them into rates. Never throws:
 * a source that fails leaves its part empty and adds a line to `errors`.
 */
export class TuiDataStore {
  private previous: { at: number; counts: Record<Side, Map<string, number> | null> } | null = null;

  constructor(
    private readonly sources: TuiSources,
    private readonly tables: readonly string[] = DASHBOARD_TABLES,
  ) {}

  async refresh(): Promise<TuiSnapshot> {
    const errors: string[] = [];
    const attempt = async <T>(source: string, read: () => Promise<T>): Promise<T | null> => {
      try {
        return await read();
      } catch (err) {
        errors.push(`${source}: ${errorMessage(err)}`);
        return null;
      }
    };
    const at = this.sources.now();
    const [status, infra, hot, cold, replication, alerts, init] = await Promise.all([
      attempt('status', () => this.sources.status()),
      Promise.all((this.sources.infraNames ?? INFRA_NAMES.filter((n) => !isNatsNode(n) || n === 'nats')).map((name) => this.sources.probe(name))),
      attempt('clickhouse-hot', () => this.sources.rowCounts('hot')),
      attempt('clickhouse-cold', () => this.sources.rowCounts('cold')),
      attempt('replication', () => this.sources.replication()),
      attempt('brain', () => this.sources.alerts()),
      attempt('brain init', () => this.sources.initStatus()),
    ]);
    for (const s of infra) if (!s.up) errors.push(`${s.name}: down${s.error ? ` (${s.error})` : ''}`);
    if (replication?.lastError) errors.push(`replication: last error: ${replication.lastError}`);

    const elapsed = this.previous === null ? 0 : at - this.previous.at;
    const prev = this.previous?.counts;
    const count = (counts: Map<string, number> | null, table: string) => (counts === null ? null : (counts.get(table) ?? 0));
    const tables = this.tables.map((table): TableActivity => {
      const hotRows = count(hot, table);
      const coldRows = count(cold, table);
      return {
        table,
        hotRows,
        coldRows,
        hotRate: ratePerSecond(prev ? count(prev.hot, table) : null, hotRows, elapsed),
        coldRate: ratePerSecond(prev ? count(prev.cold, table) : null, coldRows, elapsed),
        lagSeconds: replication?.lag.get(table) ?? null,
      };
    });
    this.previous = { at, counts: { hot, cold } };

    return {
      at: new Date(at).toISOString(),
      processes: status?.processes ?? [],
      infra,
      tables,
      alerts:
        alerts === null
          ? null
          : { open: alerts.length, items: alerts.map((a) => ({ id: a.id, severity: a.severity, source: a.source, message: a.message, ackedAt: a.ackedAt ?? null })) },
      init,
      errors,
    };
  }
}
