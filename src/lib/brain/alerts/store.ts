import type pg from 'pg';
import type { AlertRuleSeed } from '../../config/schema.js';
import type { AlertEvent, AlertRuleKind, AlertSeverity } from '../schema.js';
import { alertSource, type AlertRule, type AlertToOpen, type AlertToRefresh, type OpenRuleAlert } from './rules.js';

/** Where an alert event is delivered. */
export const ALERT_CHANNELS = ['webhook', 'nats'] as const;
export type AlertChannel = (typeof ALERT_CHANNELS)[number];

/**
 * One alert (stable JSON shape of the alert API routes and `mprism alerts --json`). The first six
 * fields are those GET /api/v1/alerts always had.
 */
export interface AlertView {
  id: number;
  createdAt: string;
  severity: AlertSeverity;
  /** `<rule>:<subject>`, unique among open alerts. */
  source: string;
  message: string;
  resolvedAt: string | null;
  /** null on alerts raised before rules existed. */
  rule: string | null;
  subject: string | null;
  details: unknown;
  ackedAt: string | null;
  ackedBy: string | null;
}

interface AlertRow {
  id: string;
  created_at: Date;
  severity: AlertSeverity;
  source: string;
  message: string;
  resolved_at: Date | null;
  rule: string | null;
  subject: string | null;
  details: unknown;
  acked_at: Date | null;
  acked_by: string | null;
}

const ALERT_COLUMNS = 'id, created_at, severity, source, message, resolved_at, rule, subject, details, acked_at, acked_by';

// bigserial ids arrive as strings; they stay far below 2^53 for this table's lifetime.
const toView = (r: AlertRow): AlertView => ({
  id: Number(r.id),
  createdAt: r.created_at.toISOString(),
  severity: r.severity,
  source: r.source,
  message: r.message,
  resolvedAt: r.resolved_at?.toISOString() ?? null,
  rule: r.rule,
  subject: r.subject,
  details: r.details,
  ackedAt: r.acked_at?.toISOString() ?? null,
  ackedBy: r.acked_by,
});

interface RuleRow {
  name: string;
  kind: AlertRuleKind;
  severity: AlertSeverity;
  enabled: boolean;
  threshold: number | null;
  updated_at: Date;
}

export type AlertRuleView = AlertRule & { updatedAt: string };

const toRule = (r: RuleRow): AlertRuleView => ({
  name: r.name,
  kind: r.kind,
  severity: r.severity,
  enabled: r.enabled,
  threshold: r.threshold,
  updatedAt: r.updated_at.toISOString(),
});

/** One delivery attempt, as alert_deliveries records it. */
export interface DeliveryAttempt {
  alertId: number;
  event: AlertEvent;
  channel: AlertChannel;
  attempt: number;
  ok: boolean;
  /** HTTP status of a webhook answer; null when there was none (and for NATS). */
  status: number | null;
  error: string | null;
}

export interface DeliveryRecord extends DeliveryAttempt {
  at: string;
}

/** An event that has not reached a channel yet, with the attempts already spent on it. */
export interface PendingDelivery {
  alertId: number;
  event: AlertEvent;
  channel: AlertChannel;
  attempts: number;
}

/** How long after resolution an undelivered event is still worth delivering after a restart. */
const REDELIVER_WITHIN = '1 day';

/** PostgreSQL access to alert_rules, alerts and alert_deliveries (tables from ensureBrainSchema). */
export class AlertStore {
  constructor(private readonly pool: pg.Pool) {}

  /** Insert the configured rules whose names are not there yet; a rule that exists is left as the API left it. */
  async seedRules(seeds: readonly AlertRuleSeed[]): Promise<string[]> {
    const added: string[] = [];
    for (const s of seeds) {
      const res = await this.pool.query(
        `INSERT INTO alert_rules (name, kind, severity, enabled, threshold) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO NOTHING`,
        [s.name, s.kind, s.severity, s.enabled, s.threshold],
      );
      if ((res.rowCount ?? 0) > 0) added.push(s.name);
    }
    return added;
  }

  async rules(): Promise<AlertRuleView[]> {
    const res = await this.pool.query<RuleRow>('SELECT name, kind, severity, enabled, threshold, updated_at FROM alert_rules ORDER BY name');
    return res.rows.map(toRule);
  }

  async rule(name: string): Promise<AlertRuleView | null> {
    const res = await this.pool.query<RuleRow>('SELECT name, kind, severity, enabled, threshold, updated_at FROM alert_rules WHERE name = $1', [name]);
    return res.rows[0] === undefined ? null : toRule(res.rows[0]);
  }

  /** Create or replace one rule; created tells which. */
  async upsertRule(rule: AlertRule): Promise<{ rule: AlertRuleView; created: boolean }> {
    const res = await this.pool.query<RuleRow & { created: boolean }>(
      `INSERT INTO alert_rules (name, kind, severity, enabled, threshold) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, severity = EXCLUDED.severity, enabled = EXCLUDED.enabled,
              threshold = EXCLUDED.threshold, updated_at = now()
       RETURNING name, kind, severity, enabled, threshold, updated_at, (xmax = 0) AS created`,
      [rule.name, rule.kind, rule.severity, rule.enabled, rule.threshold],
    );
    const row = res.rows[0]!;
    return { rule: toRule(row), created: row.created };
  }

  /** Open alerts raised by rules, as evaluation needs them. */
  async openRuleAlerts(): Promise<OpenRuleAlert[]> {
    const res = await this.pool.query<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE resolved_at IS NULL AND rule IS NOT NULL ORDER BY id`);
    return res.rows.map((r) => ({ id: Number(r.id), rule: r.rule!, subject: r.subject ?? '', severity: r.severity, message: r.message, details: r.details }));
  }

  /**
   * Resolve open alerts raised before rules existed (by the old job-result alerts): nothing
   * evaluates them any more, so they would stay open forever. Returns how many.
   */
  async resolveLegacyAlerts(): Promise<number> {
    const res = await this.pool.query('UPDATE alerts SET resolved_at = now() WHERE resolved_at IS NULL AND rule IS NULL');
    return res.rowCount ?? 0;
  }

  /** null when an alert of the same source is already open (another brain got there first). */
  async openAlert(a: AlertToOpen): Promise<AlertView | null> {
    const res = await this.pool.query<AlertRow>(
      `INSERT INTO alerts (severity, source, message, rule, subject, details) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       ON CONFLICT (source) WHERE resolved_at IS NULL DO NOTHING
       RETURNING ${ALERT_COLUMNS}`,
      [a.severity, alertSource(a.rule, a.subject), a.message, a.rule, a.subject, JSON.stringify(a.details)],
    );
    return res.rows[0] === undefined ? null : toView(res.rows[0]);
  }

  async refreshAlert(a: AlertToRefresh): Promise<void> {
    await this.pool.query('UPDATE alerts SET severity = $2, message = $3, details = $4::jsonb WHERE id = $1 AND resolved_at IS NULL', [
      a.id,
      a.severity,
      a.message,
      JSON.stringify(a.details),
    ]);
  }

  /** null when it was no longer open. */
  async resolveAlert(id: number): Promise<AlertView | null> {
    const res = await this.pool.query<AlertRow>(`UPDATE alerts SET resolved_at = now() WHERE id = $1 AND resolved_at IS NULL RETURNING ${ALERT_COLUMNS}`, [id]);
    return res.rows[0] === undefined ? null : toView(res.rows[0]);
  }

  /** Acknowledge; idempotent: a second ack keeps the first one's time and name. null: no such alert. */
  async ack(id: number, by: string | null): Promise<AlertView | null> {
    const res = await this.pool.query<AlertRow>(
      `UPDATE alerts SET acked_at = coalesce(acked_at, now()), acked_by = CASE WHEN acked_at IS NULL THEN $2 ELSE acked_by END
        WHERE id = $1 RETURNING ${ALERT_COLUMNS}`,
      [id, by],
    );
    return res.rows[0] === undefined ? null : toView(res.rows[0]);
  }

  async alert(id: number): Promise<AlertView | null> {
    const res = await this.pool.query<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = $1`, [id]);
    return res.rows[0] === undefined ? null : toView(res.rows[0]);
  }

  /** Open alerts most severe first, then newest; with `all`, resolved ones too, newest first. */
  async alerts(opts: { state: 'open' | 'all'; limit: number }): Promise<AlertView[]> {
    const res =
      opts.state === 'open'
        ? await this.pool.query<AlertRow>(
            `SELECT ${ALERT_COLUMNS} FROM alerts WHERE resolved_at IS NULL
              ORDER BY (severity = 'critical') DESC, created_at DESC, id DESC LIMIT $1`,
            [opts.limit],
          )
        : await this.pool.query<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM alerts ORDER BY created_at DESC, id DESC LIMIT $1`, [opts.limit]);
    return res.rows.map(toView);
  }

  async recordDelivery(d: DeliveryAttempt): Promise<void> {
    await this.pool.query(
      'INSERT INTO alert_deliveries (alert_id, event, channel, attempt, ok, status, error) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [d.alertId, d.event, d.channel, d.attempt, d.ok, d.status, d.error],
    );
  }

  /** Attempts on one alert, oldest first. */
  async deliveries(alertId: number): Promise<DeliveryRecord[]> {
    const res = await this.pool.query<{ alert_id: string; event: AlertEvent; channel: AlertChannel; attempt: number; ok: boolean; status: number | null; error: string | null; at: Date }>(
      'SELECT alert_id, event, channel, attempt, ok, status, error, at FROM alert_deliveries WHERE alert_id = $1 ORDER BY at, id',
      [alertId],
    );
    return res.rows.map((r) => ({ alertId: Number(r.alert_id), event: r.event, channel: r.channel, attempt: r.attempt, ok: r.ok, status: r.status, error: r.error, at: r.at.toISOString() }));
  }

  /**
   * Events a previous brain left undelivered on a channel, with fewer than maxAttempts spent: the
   * `opened` of every unacknowledged alert, the `resolved` of every resolved one (both while recent).
   * Oldest alert first, its `opened` before its `resolved`.
   */
  async pendingDeliveries(channels: readonly AlertChannel[], maxAttempts: number): Promise<PendingDelivery[]> {
    if (channels.length === 0) return [];
    const res = await this.pool.query<{ alert_id: string; event: AlertEvent; channel: AlertChannel; attempts: string }>(
      `WITH events AS (
         SELECT id, 'opened' AS event FROM alerts
          WHERE rule IS NOT NULL AND acked_at IS NULL AND (resolved_at IS NULL OR resolved_at > now() - interval '${REDELIVER_WITHIN}')
         UNION ALL
         SELECT id, 'resolved' FROM alerts WHERE rule IS NOT NULL AND resolved_at > now() - interval '${REDELIVER_WITHIN}'
       )
       SELECT e.id AS alert_id, e.event, c.channel, count(d.id) AS attempts
         FROM events e CROSS JOIN unnest($1::text[]) AS c (channel)
         LEFT JOIN alert_deliveries d ON d.alert_id = e.id AND d.event = e.event AND d.channel = c.channel
        GROUP BY e.id, e.event, c.channel
       HAVING NOT coalesce(bool_or(d.ok), false) AND count(d.id) < $2
        ORDER BY e.id, e.event, c.channel`,
      [channels, maxAttempts],
    );
    return res.rows.map((r) => ({ alertId: Number(r.alert_id), event: r.event, channel: r.channel, attempts: Number(r.attempts) }));
  }
}
