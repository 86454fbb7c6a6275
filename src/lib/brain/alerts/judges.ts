import { isObject } from '../../json-guards.js';
import type { DataType } from '../../config/schema.js';
import type { InfraStatus } from '../../infra/local-servers.js';
import { STALE_AFTER_SECONDS } from '../../feeds/freshness.js';
import type { StreamHealth } from '../../feeds/stream-health.js';
import type { Hole } from '../../store/holes.js';
import type { DaemonStatus } from '../../supervisor/state.js';
import type { Firing } from './rules.js';

/**
 * Pure judgements, one per rule kind: facts in, firing subjects out. Subjects name what is wrong
 * (`binance_spot.trade.BTCUSDT`, `trades`, `collector`), so one alert per thing.
 */

const round = (n: number) => Math.round(n);

/** Types a venue sends only when something happens: silence on one instrument is normal there. */
const EVENT_DRIVEN: ReadonlySet<DataType> = new Set<DataType>(['liquidation']);

/**
 * How long a stream may be silent before the rule fires: the rule's threshold for continuous
 * WebSocket streams (trades, books), never less than the shared staleness table for polled and
 * event-driven ones (a funding rate changes every 8 h, a liquidation comes when it comes).
 */
export function streamSilenceLimit(stream: Pick<StreamHealth, 'dataType' | 'source'>, thresholdSeconds: number): number {
  const continuous = stream.source === 'ws' && !EVENT_DRIVEN.has(stream.dataType);
  return continuous ? thresholdSeconds : Math.max(thresholdSeconds, STALE_AFTER_SECONDS[stream.dataType]);
}

export interface StaleStreamsInput {
  /** The collector's /health `streams`. */
  streams: readonly StreamHealth[];
  thresholdSeconds: number;
  now: number;
  /** The collector's start-up grace: a stream it calls stale without any record has been silent at least this long. */
  graceSeconds: number;
  /** Per subject, since when the brain has seen it stale without any record (kept between evaluations). */
  silentSince: ReadonlyMap<string, number>;
}

/**
 * Streams silent past their limit: each configured instrument of a continuous stream on its own (a
 * dead symbol must not hide behind a live one); an event-driven stream only as a whole. A stream
 * the collector still calls `starting` (start-up grace) never fires. A stream that never delivered
 * has been silent at least the grace, plus however long the brain has seen it so.
 */
export function judgeStaleStreams(input: StaleStreamsInput): { firing: Firing[]; silentSince: Map<string, number> } {
  const firing: Firing[] = [];
  const silentSince = new Map<string, number>();
  const judge = (subject: string, st: StreamHealth, status: string, ageSeconds: number | null, lastSuccessAt: string | null, instrument: string | null) => {
    if (status === 'starting') return;
    const limit = streamSilenceLimit(st, input.thresholdSeconds);
    let silence: number;
    if (ageSeconds !== null) silence = ageSeconds;
    else if (status === 'stale') {
      const since = input.silentSince.get(subject) ?? input.now;
      silentSince.set(subject, since);
      silence = input.graceSeconds + (input.now - since) / 1000;
    } else return;
    if (silence <= limit) return;
    const what = `${st.venue} ${st.dataType}${instrument === null ? '' : ` ${instrument}`}`;
    const lastError = instrument === null ? st.lastError : (st.instruments.find((i) => i.instrument === instrument)?.lastError ?? null);
    firing.push({
      subject,
      message: `${what}: no data for ${ageSeconds === null ? `over ${round(silence)}` : round(silence)} s (limit ${limit} s)${lastError ? `, last error ${lastError}` : ''}`,
      details: { venue: st.venue, dataType: st.dataType, instrument, lastSuccessAt, silenceSeconds: round(silence), limitSeconds: limit, lastError },
    });
  };
  for (const st of input.streams) {
    const instruments = st.instruments ?? [];
    if (EVENT_DRIVEN.has(st.dataType) || instruments.length === 0) {
      judge(`${st.venue}.${st.dataType}`, st, st.status, st.ageSeconds, st.lastSuccessAt, null);
    } else {
      for (const i of instruments) judge(`${st.venue}.${st.dataType}.${i.instrument}`, st, i.status, i.ageSeconds, i.lastSuccessAt, i.instrument);
    }
  }
  return { firing, silentSince };
}

/** Open holes older than the threshold, one subject per stream (venue x data type x instrument). */
export function judgeHoles(holes: readonly Hole[], thresholdSeconds: number, now: number): Firing[] {
  const byStream = new Map<string, Hole[]>();
  for (const h of holes) {
    if (h.state !== 'open' || now - h.recordedAt <= thresholdSeconds * 1000) continue;
    const subject = `${h.venue}.${h.dataType}.${h.instrument}`;
    byStream.set(subject, [...(byStream.get(subject) ?? []), h]);
  }
  return [...byStream].map(([subject, hs]) => {
    const oldest = Math.min(...hs.map((h) => h.recordedAt));
    const missingSeconds = hs.reduce((n, h) => n + Math.max(0, h.toTime - h.fromTime) / 1000, 0);
    const first = hs[0]!;
    return {
      subject,
      message: `${first.venue} ${first.dataType} ${first.instrument}: ${hs.length} open hole${hs.length === 1 ? '' : 's'} (${round(missingSeconds)} s of data), the oldest recorded ${round((now - oldest) / 1000)} s ago; run 'mprism repair'`,
      details: {
        venue: first.venue,
        dataType: first.dataType,
        instrument: first.instrument,
        holes: hs.length,
        holeIds: hs.map((h) => h.holeId).slice(0, 20),
        oldestRecordedAt: new Date(oldest).toISOString(),
        missingSeconds: round(missingSeconds),
      },
    };
  });
}

/** Tables whose replication watermark is further behind than the threshold; a table without a watermark yet is not lagging. */
export function judgeReplicationLag(lagSeconds: Readonly<Record<string, number | null>>, thresholdSeconds: number): Firing[] {
  return Object.entries(lagSeconds)
    .filter((e): e is [string, number] => e[1] !== null && e[1] > thresholdSeconds)
    .map(([table, lag]) => ({
      subject: table,
      message: `replication of ${table} is ${round(lag)} s behind (limit ${thresholdSeconds} s)`,
      details: { table, lagSeconds: round(lag), limitSeconds: thresholdSeconds },
    }));
}

/** The newest finished integrity run, as job_runs holds it. */
export interface IntegrityRunFact {
  id: number;
  finishedAt: string;
  ok: boolean;
  result: unknown;
  error: string | null;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

/**
 * The problems an integrity report lists, but its open holes: those are hole_unrepaired's, which
 * gives repair time (a fresh hole is not an emergency). Pending windows (late data) are never problems.
 */
export function integrityProblems(report: unknown): string[] {
  if (!isObject(report)) return [];
  const tables = Array.isArray(report.tables) ? report.tables.filter(isObject) : [];
  const perTable = tables.flatMap((t) => strings(t.problems).map((p) => (typeof t.table === 'string' ? `${t.table}: ${p}` : p)));
  return [...perTable, ...strings(report.problems).filter((p) => !p.startsWith('hole: '))];
}

/** How many problems an alert message lists before counting the rest. */
const PROBLEMS_SHOWN = 3;

/** The latest integrity run found problems (a run that failed outright is job_failing's). */
export function judgeIntegrity(latest: IntegrityRunFact | null): Firing[] {
  if (latest === null || latest.ok || latest.error !== null) return [];
  const problems = integrityProblems(latest.result);
  if (problems.length === 0) return [];
  const more = problems.length > PROBLEMS_SHOWN ? ` (+${problems.length - PROBLEMS_SHOWN} more)` : '';
  return [
    {
      subject: 'integrity',
      message: `integrity run ${latest.id}: ${problems.length} problem${problems.length === 1 ? '' : 's'}: ${problems.slice(0, PROBLEMS_SHOWN).join('; ')}${more}`,
      details: { runId: latest.id, finishedAt: latest.finishedAt, problems: problems.slice(0, 50) },
    },
  ];
}

export interface DaemonFacts {
  /** The supervisor as `mprism health` judges it (judgeSupervisor): running, stopped, dead, unresponsive. */
  supervisor: { state: string; detail: string | null };
  /** The supervisor's view of each daemon (live, else its last snapshot). */
  daemons: readonly Pick<DaemonStatus, 'name' | 'state' | 'wanted' | 'detail' | 'restarts'>[];
  /** GET /health of each daemon checked: null status when it did not answer. */
  health: ReadonlyMap<string, { status: number | null; error: string | null }>;
  now: number;
  /** Per daemon, since when its /health has been failing (kept between evaluations). */
  failingSince: ReadonlyMap<string, number>;
}

/**
 * A daemon errored (the supervisor gave up) at once; a daemon restarting (backoff), or wanted and
 * running with a /health failing, for longer than the threshold (one restart while starting is not
 * an emergency); the supervisor itself when it is gone while the platform should run. Daemons
 * stopped on purpose are not watched.
 */
export function judgeDaemons(facts: DaemonFacts, thresholdSeconds: number): { firing: Firing[]; failingSince: Map<string, number> } {
  const firing: Firing[] = [];
  const failingSince = new Map<string, number>();
  const { state, detail } = facts.supervisor;
  if (state !== 'running' && state !== 'stopped') {
    firing.push({
      subject: 'supervisor',
      message: `supervisor ${state}${detail ? ` (${detail})` : ''}: nothing restarts what dies; run 'mprism repair'`,
      details: { daemon: 'supervisor', state, detail },
    });
  }
  /** Since when `name` has been failing (kept while it goes on failing); whether that is past the threshold. */
  const failing = (name: string) => {
    const since = facts.failingSince.get(name) ?? facts.now;
    failingSince.set(name, since);
    const seconds = (facts.now - since) / 1000;
    return { since, seconds, past: seconds > thresholdSeconds };
  };
  for (const d of facts.daemons) {
    if (!d.wanted) continue;
    if (d.state === 'errored') {
      firing.push({
        subject: d.name,
        message: `${d.name} errored (gave up restarting)${d.detail ? `: ${d.detail}` : ''}`,
        details: { daemon: d.name, state: d.state, restarts: d.restarts, detail: d.detail },
      });
      continue;
    }
    // Starting again after a crash is part of the same restart loop: its memory carries through.
    if (d.state === 'backoff' || (d.state === 'starting' && d.restarts > 0)) {
      const f = failing(d.name);
      if (!f.past) continue;
      firing.push({
        subject: d.name,
        message: `${d.name} restarting for ${round(f.seconds)} s (limit ${thresholdSeconds} s, ${d.restarts} restarts)${d.detail ? `: ${d.detail}` : ''}`,
        details: { daemon: d.name, state: d.state, restarts: d.restarts, detail: d.detail, failingSince: new Date(f.since).toISOString() },
      });
      continue;
    }
    const h = facts.health.get(d.name);
    if (h === undefined || d.state !== 'running') continue;
    if (h.status === 200) continue;
    const f = failing(d.name);
    if (!f.past) continue;
    const why = h.status === null ? `not answering${h.error ? ` (${h.error})` : ''}` : `answering HTTP ${h.status}`;
    firing.push({
      subject: d.name,
      message: `${d.name} /health ${why} for ${round(f.seconds)} s (limit ${thresholdSeconds} s)`,
      details: { daemon: d.name, state: d.state, httpStatus: h.status, failingSince: new Date(f.since).toISOString(), error: h.error },
    });
  }
  return { firing, failingSince };
}

/** Each infrastructure server not answering its probe. */
export function judgeInfra(statuses: readonly InfraStatus[]): Firing[] {
  return statuses
    .filter((s) => !s.up)
    .map((s) => ({
      subject: s.name,
      message: `${s.name} unreachable at ${s.address}${s.error ? `: ${s.error}` : ''}`,
      details: { server: s.name, mode: s.mode, address: s.address, error: s.error },
    }));
}

export interface DiskFact {
  path: string;
  usedPercent: number;
  freeBytes: number;
  totalBytes: number;
}

/** The filesystem of MPRISM_HOME filled above the threshold (percent). */
export function judgeDisk(disk: DiskFact, thresholdPercent: number): Firing[] {
  if (disk.usedPercent <= thresholdPercent) return [];
  return [
    {
      subject: disk.path,
      message: `filesystem of ${disk.path} is ${disk.usedPercent.toFixed(1)}% full (limit ${thresholdPercent}%), ${(disk.freeBytes / 2 ** 30).toFixed(1)} GiB free`,
      details: { path: disk.path, usedPercent: Math.round(disk.usedPercent * 10) / 10, freeBytes: disk.freeBytes, totalBytes: disk.totalBytes },
    },
  ];
}

/** Usage the way df counts it: space reserved for root is not available to us. */
export function diskUsedPercent(s: { blocks: number; bfree: number; bavail: number }): number {
  const used = s.blocks - s.bfree;
  const usable = used + s.bavail;
  return usable <= 0 ? 0 : (used * 100) / usable;
}

/** One finished run of a task, newest first in the lists judgeJobs takes. */
export interface TaskRunFact {
  id: number;
  failed: boolean;
  error: string | null;
  finishedAt: string;
}

/** Tasks whose last N finished runs all failed (an error, not problems found: those are the other rules'). */
export function judgeJobs(runsByTask: ReadonlyMap<string, readonly TaskRunFact[]>, failuresInARow: number): Firing[] {
  const n = Math.max(1, Math.round(failuresInARow));
  const firing: Firing[] = [];
  for (const [task, runs] of runsByTask) {
    const last = runs.slice(0, n);
    if (last.length < n || !last.every((r) => r.failed)) continue;
    const latest = last[0]!;
    firing.push({
      subject: task,
      message: `task ${task}: the last ${n} run${n === 1 ? '' : 's'} failed, latest: ${latest.error ?? 'unknown error'}`,
      details: { task, runIds: last.map((r) => r.id), lastError: latest.error, lastFinishedAt: latest.finishedAt },
    });
  }
  return firing;
}
