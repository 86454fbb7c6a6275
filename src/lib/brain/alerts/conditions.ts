import { statfs } from 'node:fs/promises';
import type pg from 'pg';
import type { AlertRuleKind, Config } from '../../config/schema.js';
import { errorMessage } from '../../errors.js';
import type { StreamHealth } from '../../feeds/stream-health.js';
import { fetchDaemonHealth } from '../../daemon-health.js';
import { isObject } from '../../json-guards.js';
import { probeInfra } from '../../infra/probe.js';
import { activeInfra, daemonPort, type DaemonName } from '../../paths.js';
import { judgeSupervisor, supervisorView } from '../../checks/status.js';
import { createClickHouse } from '../../store/client.js';
import { listHoles } from '../../store/holes.js';
import { inspectHomeLock } from '../../supervisor/lock.js';
import { platformWanted } from '../../supervisor/state.js';
import {
  diskUsedPercent,
  judgeDaemons,
  judgeDisk,
  judgeHoles,
  judgeInfra,
  judgeIntegrity,
  judgeJobs,
  judgeReplicationLag,
  judgeStaleStreams,
  type DaemonFacts,
  type IntegrityRunFact,
  type TaskRunFact,
} from './judges.js';
import { effectiveThreshold, type AlertRule, type Firing, type RuleFinding } from './rules.js';

/** Per source request: a hung daemon must not hold up the evaluation. */
const SOURCE_TIMEOUT_MS = 3000;

/** Thrown while gathering a fact that cannot be read: the rules depending on it are unknown, not clear. */
class FactUnavailable extends Error {}

/** A daemon's /health body; a daemon not answering makes what depends on it unknown. */
async function daemonHealthBody(name: string, port: number): Promise<unknown> {
  const answer = await fetchDaemonHealth(port, SOURCE_TIMEOUT_MS);
  if (!answer.answered) throw new FactUnavailable(`${name} /health not answering: ${answer.error}`);
  return answer.body;
}

/**
 * Gathers the facts each enabled rule judges, once per kind per evaluation, and keeps what the
 * judgements need between evaluations (since when a stream or a daemon has been failing).
 */
export class ConditionGatherer {
  private silentSince = new Map<string, number>();
  private failingSince = new Map<string, number>();
  /** Bumped by forget(), so an evaluation still running then does not write its memory back. */
  private epoch = 0;

  constructor(private readonly deps: { config: Config; pool: pg.Pool }) {}

  /** Drops what was remembered between evaluations: after a gap (leadership lost) it says nothing about now. */
  forget(): void {
    this.epoch++;
    this.silentSince = new Map();
    this.failingSince = new Map();
  }

  /** One finding per enabled rule. */
  async gather(rules: readonly AlertRule[], now = Date.now()): Promise<Map<string, RuleFinding>> {
    const facts = new Map<AlertRuleKind, Promise<(threshold: number | null) => Firing[]>>();
    const judgeFor = (kind: AlertRuleKind) => {
      let p = facts.get(kind);
      if (p === undefined) facts.set(kind, (p = this.factsOf(kind, now, rules.filter((r) => r.enabled && r.kind === kind))));
      return p;
    };
    // What a kind remembers is only good while it is watched without a break.
    const watched = new Set(rules.filter((r) => r.enabled).map((r) => r.kind));
    if (!watched.has('stream_stale')) this.silentSince = new Map();
    if (!watched.has('daemon_unhealthy')) this.failingSince = new Map();
    const findings = new Map<string, RuleFinding>();
    await Promise.all(
      rules
        .filter((r) => r.enabled)
        .map(async (rule) => {
          try {
            const judge = await judgeFor(rule.kind);
            findings.set(rule.name, { firing: judge(effectiveThreshold(rule)), unknown: null });
          } catch (err) {
            if (!(err instanceof FactUnavailable)) throw err;
            findings.set(rule.name, { unknown: err.message });
          }
        }),
    );
    return findings;
  }

  /** Reads the facts of one kind; returns its judgement as a function of the rule's threshold. */
  private async factsOf(kind: AlertRuleKind, now: number, rulesOfKind: readonly AlertRule[]): Promise<(threshold: number | null) => Firing[]> {
    const { config } = this.deps;
    const epoch = this.epoch;
    switch (kind) {
      case 'stream_stale': {
        const streams = await this.collectorStreams();
        return (threshold) => {
          const judged = judgeStaleStreams({ streams, thresholdSeconds: threshold ?? 0, now, graceSeconds: config.collector.startupGraceSeconds, silentSince: this.silentSince });
          if (epoch === this.epoch) this.silentSince = judged.silentSince;
          return judged.firing;
        };
      }
      case 'hole_unrepaired': {
        const client = createClickHouse(config.clickhouse.hot);
        try {
          const holes = await listHoles(client, config.clickhouse.hot.database, { changedSince: now });
          return (threshold) => judgeHoles(holes, threshold ?? 0, now);
        } catch (err) {
          throw new FactUnavailable(`stream holes unreadable in ClickHouse hot: ${errorMessage(err).split('\n')[0]}`);
        } finally {
          await client.close();
        }
      }
      case 'replication_lag': {
        const body = await daemonHealthBody('replication', config.replication.port);
        if (!isObject(body) || !isObject(body.lagSeconds)) throw new FactUnavailable('replication /health reports no lagSeconds (still starting?)');
        const lag = Object.fromEntries(Object.entries(body.lagSeconds).map(([t, v]) => [t, typeof v === 'number' && Number.isFinite(v) ? v : null]));
        return (threshold) => judgeReplicationLag(lag, threshold ?? 0);
      }
      case 'integrity_problems': {
        const latest = await this.latestIntegrityRun();
        return () => judgeIntegrity(latest);
      }
      case 'daemon_unhealthy': {
        const daemonFacts = await this.daemonFacts(now);
        return (threshold) => {
          const judged = judgeDaemons({ ...daemonFacts, failingSince: this.failingSince }, threshold ?? 0);
          if (epoch === this.epoch) this.failingSince = judged.failingSince;
          return judged.firing;
        };
      }
      case 'infra_down': {
        const statuses = await Promise.all(activeInfra(config).map((name) => probeInfra(config, name, SOURCE_TIMEOUT_MS)));
        return () => judgeInfra(statuses);
      }
      case 'disk_usage': {
        let s;
        try {
          s = await statfs(config.home);
        } catch (err) {
          throw new FactUnavailable(`cannot read the filesystem of ${config.home}: ${errorMessage(err)}`);
        }
        const disk = { path: config.home, usedPercent: diskUsedPercent(s), freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
        return (threshold) => judgeDisk(disk, threshold ?? 100);
      }
      case 'job_failing': {
        const deepest = Math.max(1, ...rulesOfKind.map((r) => Math.round(effectiveThreshold(r) ?? 1)));
        const runs = await this.recentRunsByTask(deepest);
        return (threshold) => judgeJobs(runs, threshold ?? 1);
      }
    }
  }

  /**
   * The newest `perTask` finished runs of each task that exists and is enabled: a deleted task's runs
   * (task_id set null) and runs from before tasks were rows have nothing left to fail, a disabled
   * task is off, not failing.
   */
  private async recentRunsByTask(perTask: number): Promise<Map<string, TaskRunFact[]>> {
    const res = await this.deps.pool.query<{ task: string; id: string; ok: boolean | null; error: string | null; finished_at: Date }>(
      `SELECT task, id, ok, error, finished_at FROM (
         SELECT t.name AS task, r.id, r.ok, r.error, r.finished_at,
                row_number() OVER (PARTITION BY r.task_id ORDER BY r.finished_at DESC, r.id DESC) AS n
           FROM job_runs r JOIN tasks t ON t.id = r.task_id
          WHERE r.finished_at IS NOT NULL AND t.enabled
       ) recent
       WHERE n <= $1
       ORDER BY task, n`,
      [perTask],
    );
    const byTask = new Map<string, TaskRunFact[]>();
    for (const r of res.rows) {
      const runs = byTask.get(r.task) ?? [];
      runs.push({ id: Number(r.id), failed: r.ok === false && r.error !== null, error: r.error, finishedAt: r.finished_at.toISOString() });
      byTask.set(r.task, runs);
    }
    return byTask;
  }

  private async collectorStreams(): Promise<StreamHealth[]> {
    const body = await daemonHealthBody('collector', this.deps.config.collector.port);
    if (!isObject(body) || !Array.isArray(body.streams)) throw new FactUnavailable('collector /health reports no streams (still starting?)');
    return body.streams as StreamHealth[];
  }

  private async latestIntegrityRun(): Promise<IntegrityRunFact | null> {
    const res = await this.deps.pool.query<{ id: string; finished_at: Date; ok: boolean; result: unknown; error: string | null }>(
      `SELECT id, finished_at, ok, result, error FROM job_runs
        WHERE job = 'integrity' AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1`,
    );
    const r = res.rows[0];
    return r === undefined ? null : { id: Number(r.id), finishedAt: r.finished_at.toISOString(), ok: r.ok, result: r.result, error: r.error };
  }

  private async daemonFacts(now: number): Promise<Omit<DaemonFacts, 'failingSince'>> {
    const { config } = this.deps;
    const view = await supervisorView(config);
    const supervisor = judgeSupervisor(view.reachable, inspectHomeLock(config, 'supervisor'), platformWanted(view.snapshot));
    // With the supervisor gone its last snapshot is history: the supervisor's own alert covers that.
    const daemons = view.reachable ? (view.snapshot?.daemons ?? []) : [];
    const watched = daemons.filter((d) => d.wanted && d.state === 'running' && d.name !== 'brain');
    const health = new Map<string, { status: number | null; error: string | null }>();
    await Promise.all(
      watched.map(async (d) => {
        const answer = await fetchDaemonHealth(daemonPort(config, d.name as DaemonName), SOURCE_TIMEOUT_MS);
        health.set(d.name, answer.answered ? { status: answer.status, error: null } : { status: null, error: answer.error });
      }),
    );
    return { supervisor: { state: supervisor.state, detail: supervisor.detail }, daemons, health, now };
  }
}
