import type { BackoffPolicy } from '../../backoff.js';
import { MprismError } from '../../errors.js';
import type { ActionRunner, BrainDeps, JobOutcome } from '../actions.js';
import type { Route } from '../api.js';
import { ConditionGatherer } from './conditions.js';
import { AlertDelivery, alertMetrics, type AlertMetrics } from './delivery.js';
import { alertRoutes } from './routes.js';
import { planAlerts, type AlertRule, type OpenRuleAlert } from './rules.js';
import { AlertStore } from './store.js';

export { AlertStore, type AlertView, type AlertRuleView } from './store.js';
export { eventBody, eventSubject, type AlertEventBody } from './delivery.js';

/** What the brain wires: the `health` action, the alert routes, and close() when the brain stops. */
export interface Alerting {
  healthAction: ActionRunner;
  routes: Route[];
  /**
   * The brain lost its lease: stops and drops the delivery worker (the new leader re-queues what is
   * pending, so it must not be sent twice) and forgets since-when timers. Leading again starts a fresh
   * worker that recovers what the brain leading in between left undelivered.
   */
  onLeadershipLost(): Promise<void>;
  /** Stops the delivery worker (attempts in flight end within brain.alerts.webhookTimeoutMs). */
  close(): Promise<void>;
}

export interface AlertingOptions {
  /** Backoff between delivery attempts (default DEFAULT_RETRY). */
  retry?: BackoffPolicy;
}

/** The `result` of one health run (job_runs.result). */
export interface HealthRunResult {
  rules: number;
  opened: string[];
  resolved: string[];
  refreshed: number;
  open: number;
  /** Rules whose facts could not be read this time, with why: their alerts were left as they were. */
  unknown: Record<string, string>;
  /** Events queued or being delivered after this run. */
  deliveriesPending: number;
}

function setOpenGauge(metrics: AlertMetrics, rules: readonly AlertRule[], open: readonly OpenRuleAlert[]): void {
  const counts = new Map<string, { rule: string; severity: string; n: number }>();
  // Every enabled rule has its series, at 0 while quiet, so dashboards see it exists.
  for (const r of rules) if (r.enabled) counts.set(`${r.name}\0${r.severity}`, { rule: r.name, severity: r.severity, n: 0 });
  for (const a of open) {
    const key = `${a.rule}\0${a.severity}`;
    const c = counts.get(key) ?? { rule: a.rule, severity: a.severity, n: 0 };
    c.n++;
    counts.set(key, c);
  }
  metrics.open.reset();
  for (const c of counts.values()) metrics.open.set({ rule: c.rule, severity: c.severity }, c.n);
}

/**
 * Alerting for one brain. Rules are seeded from config.brain.alerts.rules on first use (a rule
 * whose name exists is left as the API left it). Each run of the health action evaluates every
 * enabled rule once and opens, refreshes and resolves alerts; delivery runs in the background,
 * started by the first run (only the leader runs actions, so only the leader delivers).
 */
export function createAlerting(deps: BrainDeps, options: AlertingOptions = {}): Alerting {
  const { config, pool, log } = deps;
  const store = new AlertStore(pool);
  const metrics = alertMetrics(deps.metrics);
  const gatherer = new ConditionGatherer({ config, pool });
  const alog = log.child({ component: 'alerts' });

  let seeded: Promise<void> | null = null;
  const ready = () =>
    (seeded ??= (async () => {
      const added = await store.seedRules(config.brain.alerts.rules);
      if (added.length > 0) alog.info({ rules: added }, 'seeded alert rules from config');
      const legacy = await store.resolveLegacyAlerts();
      if (legacy > 0) alog.info({ resolved: legacy }, 'resolved alerts raised before alert rules existed');
    })().catch((err: unknown) => {
      seeded = null; // try again next time
      throw err;
    }));

  let delivery: AlertDelivery | null = null;
  /** A worker being stopped: the next one waits for it, so an attempt in flight is recorded before recover() reads. */
  let stopping: Promise<void> = Promise.resolve();
  let closed = false;
  const stopDelivery = (): Promise<void> => {
    const d = delivery;
    delivery = null;
    if (d !== null) stopping = Promise.all([stopping, d.close()]).then(() => undefined);
    return stopping;
  };
  const startDelivery = async (): Promise<AlertDelivery> => {
    if (delivery !== null) return delivery;
    await stopping;
    if (delivery !== null) return delivery;
    const started = new AlertDelivery({ store, config, log: alog, metrics, retry: options.retry });
    delivery = started;
    const recovered = await started.recover().catch((err: unknown) => {
      delivery = null;
      void started.close();
      throw err;
    });
    if (recovered > 0) alog.info({ events: recovered }, 'retrying alert events a previous brain left undelivered');
    return started;
  };

  const healthAction: ActionRunner = async (ctx): Promise<JobOutcome> => {
    if (closed) throw new Error('alerting is closed');
    await ready();
    // Aborted runs (leadership lost) must not start a worker the lost leadership just stopped.
    if (ctx.signal.aborted) throw new MprismError('health run stopped before evaluating');
    const queue = await startDelivery();
    const rules = await store.rules();
    const findings = await gatherer.gather(rules);
    const open = await store.openRuleAlerts();
    const plan = planAlerts(rules, findings, open);
    const result: HealthRunResult = { rules: rules.filter((r) => r.enabled).length, opened: [], resolved: [], refreshed: 0, open: 0, unknown: {}, deliveriesPending: 0 };
    for (const [rule, f] of findings) if (f.unknown !== null) result.unknown[rule] = f.unknown;

    // Stopping mid-way is safe: what was not applied is found again by the next evaluation.
    for (const o of plan.open) {
      if (ctx.signal.aborted) break;
      const alert = await store.openAlert(o);
      if (alert === null) continue;
      result.opened.push(alert.source);
      alog.warn({ alertId: alert.id, source: alert.source, severity: alert.severity, message: alert.message }, 'alert opened');
      queue.enqueue(alert.id, 'opened');
    }
    for (const r of plan.refresh) {
      if (ctx.signal.aborted) break;
      await store.refreshAlert(r);
      result.refreshed++;
    }
    for (const r of plan.resolve) {
      if (ctx.signal.aborted) break;
      const alert = await store.resolveAlert(r.id);
      if (alert === null) continue;
      result.resolved.push(alert.source);
      alog.info({ alertId: alert.id, source: alert.source, reason: r.reason }, 'alert resolved');
      queue.enqueue(alert.id, 'resolved');
    }
    const nowOpen = await store.openRuleAlerts();
    setOpenGauge(metrics, rules, nowOpen);
    result.open = nowOpen.length;
    result.deliveriesPending = queue.pending;
    // Alerts are this action's output; a problem is only a fact it could not read.
    const problems = Object.entries(result.unknown).map(([rule, why]) => `${rule}: ${why}`);
    return { result, problems };
  };

  return {
    healthAction,
    routes: alertRoutes(store, ready),
    onLeadershipLost: async () => {
      gatherer.forget();
      await stopDelivery();
    },
    close: async () => {
      closed = true;
      await stopDelivery();
    },
  };
}
