import { isObject } from '../../json-guards.js';
import { ALERT_RULE_KINDS, ALERT_SEVERITIES, type AlertRuleKind, type AlertSeverity } from '../schema.js';
import { NAME_PATTERN } from '../../config/schema.js';
import { BadRequestError, NotFoundError, json, type ApiRequest, type Route } from '../api.js';
import type { AlertRule } from './rules.js';
import type { AlertStore } from './store.js';


/** Alerts listed per request at most; the default when no limit is asked. */
export const MAX_ALERTS_LISTED = 1000;
const DEFAULT_ALERTS_LISTED = 100;

const ACKER_MAX_CHARS = 100;

function objectBody(req: ApiRequest, allowed: readonly string[]): Record<string, unknown> {
  if (!isObject(req.body)) throw new BadRequestError('body', 'expected a JSON object');
  const unknown = Object.keys(req.body).find((k) => !allowed.includes(k));
  if (unknown !== undefined) throw new BadRequestError(unknown, `unknown field ${unknown} (expected ${allowed.join(', ')})`);
  return req.body;
}

function alertId(value: unknown): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new BadRequestError('id', 'id must be a positive integer (an alert id)');
  return n;
}

function listQuery(query: URLSearchParams): { state: 'open' | 'all'; limit: number } {
  const state = query.get('state') ?? 'open';
  if (state !== 'open' && state !== 'all') throw new BadRequestError('state', `state must be open or all, not ${state}`);
  const rawLimit = query.get('limit');
  const limit = rawLimit === null ? DEFAULT_ALERTS_LISTED : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_ALERTS_LISTED) throw new BadRequestError('limit', `limit must be an integer from 1 to ${MAX_ALERTS_LISTED}`);
  return { state, limit };
}

/** Largest meaningful threshold per unit: a day of seconds is not a limit, a percent stops at 100. */
function checkThreshold(kind: AlertRuleKind, threshold: number | null): void {
  if (threshold === null) return;
  if (!Number.isFinite(threshold) || threshold < 0) throw new BadRequestError('threshold', 'threshold must be a number >= 0, or null for the default');
  if (kind === 'disk_usage' && threshold > 100) throw new BadRequestError('threshold', 'a disk_usage threshold is a percentage: at most 100');
  if (kind === 'job_failing' && (!Number.isInteger(threshold) || threshold < 1)) {
    throw new BadRequestError('threshold', 'a job_failing threshold is a number of failed runs in a row: an integer >= 1');
  }
}

/**
 * A rule from a POST body: a new rule needs kind and severity; an existing one keeps what the body
 * leaves out.
 */
export function ruleFromBody(body: Record<string, unknown>, existing: AlertRule | null): AlertRule {
  const name = body.name;
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) throw new BadRequestError('name', 'name must be lowercase letters, digits, - and _, at most 63');
  const kind = body.kind ?? existing?.kind;
  if (typeof kind !== 'string' || !(ALERT_RULE_KINDS as readonly string[]).includes(kind)) {
    throw new BadRequestError('kind', `kind must be one of ${ALERT_RULE_KINDS.join(', ')}`);
  }
  const severity = body.severity ?? existing?.severity;
  if (typeof severity !== 'string' || !(ALERT_SEVERITIES as readonly string[]).includes(severity)) {
    throw new BadRequestError('severity', `severity must be one of ${ALERT_SEVERITIES.join(', ')}`);
  }
  const enabled = body.enabled ?? existing?.enabled ?? true;
  if (typeof enabled !== 'boolean') throw new BadRequestError('enabled', 'enabled must be true or false');
  const threshold = 'threshold' in body ? body.threshold : (existing?.threshold ?? null);
  if (threshold !== null && typeof threshold !== 'number') throw new BadRequestError('threshold', 'threshold must be a number, or null for the default');
  checkThreshold(kind as AlertRuleKind, threshold);
  return { name, kind: kind as AlertRuleKind, severity: severity as AlertSeverity, enabled, threshold };
}

/**
 * The alert API: list and acknowledge alerts, list and upsert rules, and GET /api/v1/alerts (open
 * alerts as `{ alerts }`, the shape the TUI has always read). `ready` seeds the rules on first use.
 */
export function alertRoutes(store: AlertStore, ready: () => Promise<void>): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/alerts',
      handle: async () => json(200, { alerts: await store.alerts({ state: 'open', limit: MAX_ALERTS_LISTED }) }),
    },
    {
      method: 'GET',
      path: '/api/v1/monitoring/alerts',
      handle: async (req) => json(200, { alerts: await store.alerts(listQuery(req.query)) }),
    },
    {
      method: 'POST',
      path: '/api/v1/monitoring/alerts/ack',
      handle: async (req) => {
        const body = objectBody(req, ['id', 'by']);
        const id = alertId(body.id);
        const by = body.by ?? null;
        if (by !== null && (typeof by !== 'string' || by.trim() === '' || by.length > ACKER_MAX_CHARS)) {
          throw new BadRequestError('by', `by must be a non-empty string of at most ${ACKER_MAX_CHARS} characters`);
        }
        const alert = await store.ack(id, by);
        if (alert === null) throw new NotFoundError(`no alert ${id}`);
        return json(200, { alert });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/monitoring/rules',
      handle: async () => {
        await ready();
        return json(200, { rules: await store.rules() });
      },
    },
    {
      method: 'POST',
      path: '/api/v1/monitoring/rules',
      handle: async (req) => {
        await ready();
        const body = objectBody(req, ['name', 'kind', 'severity', 'enabled', 'threshold']);
        const existing = typeof body.name === 'string' ? await store.rule(body.name) : null;
        const { rule, created } = await store.upsertRule(ruleFromBody(body, existing));
        return json(created ? 201 : 200, { rule, created });
      },
    },
  ];
}
