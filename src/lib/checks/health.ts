import { hostname } from 'node:os';
import { DATA_TYPES, VENUES, type Config, type DataType, type Venue } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { redisUrl } from '../infra/endpoints.js';
import { fetchDaemonHealth } from '../daemon-health.js';
import type { InfraStatus } from '../infra/local-servers.js';
import { probeInfra } from '../infra/probe.js';
import { activeDaemons, activeInfra, daemonPort, homePaths, type DaemonName } from '../paths.js';
import { entriesOfHost, fetchRegistry } from '../registry.js';
import { createClickHouse, selectRows } from '../store/client.js';
import { ident, qualified, str } from '../store/sql.js';
import { tableFor } from '../store/tables.js';
import { STALE_AFTER_SECONDS } from '../feeds/freshness.js';
import type { StreamHealth } from '../feeds/stream-health.js';
import type { OverloadStage } from '../overload.js';
import { inspectHomeLock } from '../supervisor/lock.js';
import { platformWanted, type SupervisorSnapshot } from '../supervisor/state.js';
import { judgeSupervisor, supervisorView } from './status.js';

export interface DaemonHealth {
  name: DaemonName;
  ok: boolean;
  /** HTTP status of GET /health, or null when it did not answer. */
  httpStatus: number | null;
  /** Present in the Redis registry (heartbeat within its TTL). */
  registered: boolean;
  detail: unknown;
}

/** How old the newest stored row of one venue x data type is (hot), as opposed to the collector's view of its streams. */
export interface StoredDataAge {
  venue: Venue;
  dataType: DataType;
  lastEventAt: string | null;
  ageSeconds: number | null;
  thresholdSeconds: number;
  status: 'fresh' | 'stale' | 'missing';
}

/** Stable --json shape of `mprism health`. */
export interface HealthReport {
  ok: boolean;
  checkedAt: string;
  /** `dead` when it is gone while the platform should run: nothing restarts what dies then. */
  supervisor: { state: string; detail: string | null };
  infra: InfraStatus[];
  daemons: DaemonHealth[];
  /** Newest stored event per enabled venue x data type (ClickHouse hot). */
  freshness: StoredDataAge[];
  /** The collector's own view per venue x data type: what it received, before the bus and storage. */
  collectorStreams: StreamHealth[];
  problems: string[];
}

async function daemonHealth(port: number): Promise<{ status: number | null; body: unknown }> {
  const answer = await fetchDaemonHealth(port, 3000);
  return answer.answered ? { status: answer.status, body: answer.body } : { status: null, body: answer.error };
}

/** Daemons expected to run: the simulator only when the platform was started with --simulate. */
function expectedDaemons(config: Config, snap: SupervisorSnapshot | null): DaemonName[] {
  return activeDaemons(config).filter((n) => n !== 'simulator' || snap?.simulate === true);
}

async function registeredNames(config: Config): Promise<Set<string>> {
  // This machine's daemons: another host's `storage` says nothing about the one here.
  return new Set(entriesOfHost((await fetchRegistry(redisUrl(config), 3000)) ?? [], hostname()).map((e) => e.name));
}

/** Last event time for each enabled venue x data type, from ClickHouse hot: one query per table. */
async function freshness(config: Config, now: number): Promise<StoredDataAge[]> {
  const wanted = new Map<DataType, Venue[]>();
  for (const venue of VENUES) {
    const v = config.collector.venues[venue];
    if (!v.enabled) continue;
    for (const dataType of v.dataTypes) wanted.set(dataType, [...(wanted.get(dataType) ?? []), venue]);
  }
  const client = createClickHouse(config.clickhouse.hot);
  try {
    const out: StoredDataAge[] = [];
    for (const dataType of DATA_TYPES) {
      const venues = wanted.get(dataType);
      if (venues === undefined) continue;
      const spec = tableFor(dataType);
      const rows = await selectRows<{ venue: string; last: string }>(
        client,
        `SELECT venue, toString(max(${ident(spec.timeColumn)})) AS last FROM ${qualified(config.clickhouse.hot.database, spec.table)} WHERE venue IN (${venues.map(str).join(', ')}) GROUP BY venue`,
      );
      const lastByVenue = new Map(rows.map((r) => [r.venue, Number(r.last)]));
      const thresholdSeconds = STALE_AFTER_SECONDS[dataType];
      for (const venue of venues) {
        const last = lastByVenue.get(venue) ?? null;
        const age = last === null ? null : Math.max(0, (now - last) / 1000);
        out.push({
          venue, dataType, thresholdSeconds,
          lastEventAt: last === null ? null : new Date(last).toISOString(),
          ageSeconds: age === null ? null : Math.round(age * 10) / 10,
          status: age === null ? 'missing' : age <= thresholdSeconds ? 'fresh' : 'stale',
        });
      }
    }
    return out;
  } finally {
    await client.close();
  }
}

const OVERLOAD_DETAIL: Record<OverloadStage, string> = {
  collector: 'stage collector (its event loop is behind; records arrive late and book snapshots thin out)',
  publish: 'stage publish (records wait for JetStream; the venue sockets are paused)',
  storage: 'stage storage (rows wait for ClickHouse hot; the JetStream backlog grows)',
};

/** The stage a daemon's /health body names as overloaded, explained; null when none. */
function overloadOf(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || !('overloaded' in body)) return null;
  const stage = body.overloaded;
  if (typeof stage !== 'string' || !(stage in OVERLOAD_DETAIL)) return null;
  const lag = 'eventLoopLagMs' in body && typeof body.eventLoopLagMs === 'number' ? `, event-loop lag p99 ${Math.round(body.eventLoopLagMs)} ms` : '';
  return `${OVERLOAD_DETAIL[stage as OverloadStage]}${lag}`;
}

/** The stream list of the collector's /health body, when it answered with one. */
function collectorStreams(daemons: readonly DaemonHealth[]): StreamHealth[] {
  const detail = daemons.find((d) => d.name === 'collector')?.detail;
  if (typeof detail !== 'object' || detail === null || !('streams' in detail) || !Array.isArray(detail.streams)) return [];
  return detail.streams as StreamHealth[];
}

/** `stale (...)` naming each stale instrument and how long it has been silent. */
export function staleDetail(st: StreamHealth): string {
  const silence = (ageSeconds: number | null) => (ageSeconds === null ? 'nothing received since start' : `last ${Math.round(ageSeconds)}s ago`);
  // A collector from before per-instrument health reports none: judge the stream as a whole.
  const stale = (st.instruments ?? []).filter((i) => i.status === 'stale');
  const error = (code: string | null | undefined) => (code ? `, last error ${code}` : '');
  if (stale.length === 0) return `stale (${silence(st.ageSeconds)}${error(st.lastError)})`;
  return `stale (${stale.map((i) => `${i.instrument}: ${silence(i.ageSeconds)}${error(i.lastError)}`).join('; ')})`;
}

export async function checkHealth(config: Config, now = Date.now()): Promise<HealthReport> {
  const problems: string[] = [];
  const view = await supervisorView(config);
  const supervisor = judgeSupervisor(view.reachable, inspectHomeLock(config, 'supervisor'), platformWanted(view.snapshot));
  if (supervisor.state !== 'running' && supervisor.state !== 'stopped') {
    problems.push(`supervisor ${supervisor.state}${supervisor.detail ? `: ${supervisor.detail}` : ''}; nothing restarts what dies until 'mprism repair'`);
  }
  const infra = await Promise.all(activeInfra(config).map((n) => probeInfra(config, n, 3000)));
  for (const s of infra) if (!s.up) problems.push(`${s.name} down at ${s.address}${s.error ? `: ${s.error}` : ''}`);

  const expected = expectedDaemons(config, view.snapshot);
  const registered = await registeredNames(config);
  const daemons: DaemonHealth[] = await Promise.all(
    expected.map(async (name) => {
      const h = await daemonHealth(daemonPort(config, name));
      const ok = h.status === 200 && registered.has(name);
      if (h.status === null) problems.push(`${name} not answering on port ${daemonPort(config, name)}`);
      else if (h.status !== 200) problems.push(`${name} unhealthy (HTTP ${h.status})`);
      else if (!registered.has(name)) problems.push(`${name} has no heartbeat in the Redis registry`);
      const overload = overloadOf(h.body);
      if (overload !== null) problems.push(`${name} overloaded: ${overload}`);
      return { name, ok, httpStatus: h.status, registered: registered.has(name), detail: h.body };
    }),
  );

  let fresh: StoredDataAge[] = [];
  if (infra.find((s) => s.name === 'clickhouse-hot')?.up) {
    fresh = await freshness(config, now).catch((err: unknown) => {
      problems.push(`freshness query failed: ${errorMessage(err)}`);
      return [];
    });
    for (const f of fresh) {
      if (f.status !== 'fresh') problems.push(`${f.venue} ${f.dataType}: ${f.status}${f.ageSeconds !== null ? ` (${f.ageSeconds}s old, threshold ${f.thresholdSeconds}s)` : ''}`);
    }
  }
  // What the collector itself sees catches what stored data cannot yet: a subscription the venue
  // acknowledged but never serves is `stale` there from the end of the start-up grace period.
  const streams = collectorStreams(daemons);
  for (const st of streams) if (st.status === 'stale') problems.push(`collector ${st.venue} ${st.dataType}: ${staleDetail(st)}`);
  return { ok: problems.length === 0, checkedAt: new Date(now).toISOString(), supervisor, infra, daemons, freshness: fresh, collectorStreams: streams, problems };
}
