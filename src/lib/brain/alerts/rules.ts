import type { AlertRuleKind, AlertSeverity } from '../schema.js';

/** One row of `alert_rules` (stable JSON shape of GET /api/v1/monitoring/rules). */
export interface AlertRule {
  name: string;
  kind: AlertRuleKind;
  severity: AlertSeverity;
  enabled: boolean;
  /** null: the kind's default (DEFAULT_THRESHOLDS). */
  threshold: number | null;
}

/**
 * The threshold a kind uses when its rule gives none, and what it means: seconds for the time-based
 * kinds, percent for disk_usage, failed runs in a row for job_failing; null where a kind has none.
 * Chosen so that a healthy platform fresh from the quick start fires nothing.
 */
export const DEFAULT_THRESHOLDS: { readonly [K in AlertRuleKind]: number | null } = {
  stream_stale: 300,
  hole_unrepaired: 3600,
  replication_lag: 900,
  integrity_problems: null,
  daemon_unhealthy: 60,
  infra_down: null,
  disk_usage: 90,
  job_failing: 3,
};

export function effectiveThreshold(rule: Pick<AlertRule, 'kind' | 'threshold'>): number | null {
  return rule.threshold ?? DEFAULT_THRESHOLDS[rule.kind];
}

/** One thing a rule finds wrong right now, e.g. subject `binance_spot.trade.BTCUSDT`. */
export interface Firing {
  subject: string;
  message: string;
  details: Record<string, unknown>;
}

/**
 * What gathering found for one rule: the subjects firing, or `unknown` with the reason when the
 * facts could not be read (a daemon not answering): unknown is not clear, so nothing resolves then.
 */
export type RuleFinding = { firing: readonly Firing[]; unknown: null } | { firing?: undefined; unknown: string };

/** An open alert as evaluation sees it. */
export interface OpenRuleAlert {
  id: number;
  rule: string;
  subject: string;
  severity: AlertSeverity;
  message: string;
  details: unknown;
}

export interface AlertToOpen {
  rule: string;
  subject: string;
  severity: AlertSeverity;
  message: string;
  details: Record<string, unknown>;
}

export interface AlertToRefresh {
  id: number;
  severity: AlertSeverity;
  message: string;
  details: Record<string, unknown>;
}

export interface AlertToResolve {
  id: number;
  /** Why it resolves: the condition cleared, the rule was disabled, or the rule is gone. */
  reason: 'cleared' | 'rule_disabled' | 'rule_removed';
}

export interface AlertPlan {
  open: AlertToOpen[];
  refresh: AlertToRefresh[];
  resolve: AlertToResolve[];
}

/** The `source` column: an alert's identity, unique among open alerts. */
export function alertSource(rule: string, subject: string): string {
  return `${rule}:${subject}`;
}

/** JSON with object keys sorted: PostgreSQL's jsonb gives keys back in its own order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const sameJson = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);

/**
 * What to do with the alerts, given the rules, what each enabled rule finds now and the alerts open:
 * an alert opens once per (rule, subject), stays open (refreshed when its text changes) while it
 * fires, and resolves when it no longer fires, when its rule is disabled or when its rule is gone.
 * A rule whose facts are unknown keeps its open alerts as they are and opens none.
 */
export function planAlerts(
  rules: readonly AlertRule[],
  findings: ReadonlyMap<string, RuleFinding>,
  open: readonly OpenRuleAlert[],
): AlertPlan {
  const plan: AlertPlan = { open: [], refresh: [], resolve: [] };
  const rulesByName = new Map(rules.map((r) => [r.name, r]));
  const openBySource = new Map(open.map((a) => [alertSource(a.rule, a.subject), a]));

  for (const alert of open) {
    const rule = rulesByName.get(alert.rule);
    if (rule === undefined) plan.resolve.push({ id: alert.id, reason: 'rule_removed' });
    else if (!rule.enabled) plan.resolve.push({ id: alert.id, reason: 'rule_disabled' });
  }

  for (const rule of rules) {
    if (!rule.enabled) continue;
    const finding = findings.get(rule.name);
    if (finding === undefined || finding.unknown !== null) continue;
    const firing = new Map(finding.firing.map((f) => [f.subject, f]));
    for (const f of firing.values()) {
      const current = openBySource.get(alertSource(rule.name, f.subject));
      if (current === undefined) {
        plan.open.push({ rule: rule.name, subject: f.subject, severity: rule.severity, message: f.message, details: f.details });
      } else if (current.message !== f.message || current.severity !== rule.severity || !sameJson(current.details, f.details)) {
        plan.refresh.push({ id: current.id, severity: rule.severity, message: f.message, details: f.details });
      }
    }
    for (const alert of open) {
      if (alert.rule === rule.name && !firing.has(alert.subject)) plan.resolve.push({ id: alert.id, reason: 'cleared' });
    }
  }
  return plan;
}
