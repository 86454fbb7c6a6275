import { hostname } from 'node:os';
import { connect, type NatsConnection } from 'nats';
import { Counter, Gauge, type Registry } from 'prom-client';
import { backoffDelay, sleep, type BackoffPolicy } from '../../backoff.js';
import type { Config } from '../../config/schema.js';
import { errorMessage } from '../../errors.js';
import { natsUrl } from '../../infra/endpoints.js';
import type { Logger } from '../../log.js';
import type { AlertEvent } from '../schema.js';
import type { AlertChannel, AlertStore, AlertView } from './store.js';

/** What the webhook receives and NATS carries for an alert opened or resolved (stable JSON shape). */
export interface AlertEventBody {
  event: AlertEvent;
  alert: {
    id: number;
    rule: string | null;
    subject: string | null;
    severity: string;
    message: string;
    details: unknown;
    openedAt: string;
    resolvedAt: string | null;
    ackedAt: string | null;
    ackedBy: string | null;
  };
  platform: { host: string };
  sentAt: string;
}

export function eventBody(event: AlertEvent, a: AlertView, at: number): AlertEventBody {
  return {
    event,
    alert: {
      id: a.id,
      rule: a.rule,
      subject: a.subject,
      severity: a.severity,
      message: a.message,
      details: a.details,
      openedAt: a.createdAt,
      resolvedAt: a.resolvedAt,
      ackedAt: a.ackedAt,
      ackedBy: a.ackedBy,
    },
    platform: { host: hostname() },
    sentAt: new Date(at).toISOString(),
  };
}

/** The NATS subject of an event: `<natsSubject>.opened` / `.resolved`, so a subscriber can pick either. */
export function eventSubject(base: string, event: AlertEvent): string {
  return `${base}.${event}`;
}

export interface AlertMetrics {
  open: Gauge<'rule' | 'severity'>;
  deliveries: Counter<'channel' | 'result'>;
}

/** The alert metrics in `registry`, created once (a brain builds its alerting once, tests many times). */
export function alertMetrics(registry: Registry): AlertMetrics {
  const existing = (name: string) => registry.getSingleMetric(name);
  return {
    open:
      (existing('mprism_brain_alerts_open') as Gauge<'rule' | 'severity'> | undefined) ??
      new Gauge({ name: 'mprism_brain_alerts_open', help: 'Open alerts by rule and severity', labelNames: ['rule', 'severity'], registers: [registry] }),
    deliveries:
      (existing('mprism_brain_alert_deliveries_total') as Counter<'channel' | 'result'> | undefined) ??
      new Counter({
        name: 'mprism_brain_alert_deliveries_total',
        help: 'Alert event delivery attempts by channel (webhook, nats) and result (ok, failed)',
        labelNames: ['channel', 'result'],
        registers: [registry],
      }),
  };
}

/** Between a failed attempt and the next; the series is bounded by brain.alerts.webhookMaxAttempts. */
export const DEFAULT_RETRY: BackoffPolicy = { initialMs: 1000, maxMs: 5 * 60_000, jitter: 0.2 };

export interface DeliveryOptions {
  store: AlertStore;
  config: Config;
  log: Logger;
  metrics: AlertMetrics;
  retry?: BackoffPolicy;
}

interface AttemptResult {
  ok: boolean;
  status: number | null;
  error: string | null;
}

/**
 * Delivers alert events to the webhook and NATS in the background: enqueue() returns at once, so a
 * slow or dead receiver never holds up evaluation. Events of one alert reach a channel in order
 * (opened before resolved); different alerts and channels do not wait for each other. Every attempt
 * is recorded in alert_deliveries, which is also what recover() resumes from after a restart.
 * An `opened` event stops being retried once its alert is acknowledged.
 */
export class AlertDelivery {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();
  private nats: Promise<NatsConnection> | null = null;
  private readonly retry: BackoffPolicy;

  constructor(private readonly o: DeliveryOptions) {
    this.retry = o.retry ?? DEFAULT_RETRY;
  }

  /** The webhook only when one is configured; NATS always. */
  channels(): AlertChannel[] {
    return this.o.config.brain.alerts.webhookUrl === null ? ['nats'] : ['webhook', 'nats'];
  }

  /** Deliver `event` of alert `alertId` on every channel (or the one given, after `spent` earlier attempts). */
  enqueue(alertId: number, event: AlertEvent, only?: { channel: AlertChannel; spent: number }): void {
    if (this.stopping.signal.aborted) return;
    for (const channel of only === undefined ? this.channels() : [only.channel]) {
      const key = `${channel}:${alertId}`;
      const previous = this.chains.get(key) ?? Promise.resolve();
      const next = previous.then(() => this.deliver(alertId, event, channel, only?.spent ?? 0));
      this.chains.set(key, next);
      void next.finally(() => {
        if (this.chains.get(key) === next) this.chains.delete(key);
      });
    }
  }

  /** Re-queue what a previous brain left undelivered (see AlertStore.pendingDeliveries). Returns how many events. */
  async recover(): Promise<number> {
    const pending = await this.o.store.pendingDeliveries(this.channels(), this.o.config.brain.alerts.webhookMaxAttempts);
    for (const p of pending) this.enqueue(p.alertId, p.event, { channel: p.channel, spent: p.attempts });
    return pending.length;
  }

  /** Events queued or being delivered. */
  get pending(): number {
    return this.chains.size;
  }

  /** Stop retrying, let attempts in flight end (each is bounded by webhookTimeoutMs), close NATS. */
  async close(): Promise<void> {
    this.stopping.abort();
    await Promise.allSettled([...this.chains.values()]);
    const nats = this.nats;
    this.nats = null;
    if (nats !== null) await nats.then((nc) => nc.close()).catch(() => undefined);
  }

  private async deliver(alertId: number, event: AlertEvent, channel: AlertChannel, spent: number): Promise<void> {
    const { store, config, log, metrics } = this.o;
    const maxAttempts = config.brain.alerts.webhookMaxAttempts;
    const signal = this.stopping.signal;
    try {
      for (let attempt = spent + 1; attempt <= maxAttempts && !signal.aborted; attempt++) {
        const alert = await store.alert(alertId);
        // Stopped while reading: the next leader delivers it (recover), not us.
        if (alert === null || signal.aborted) return;
        if (event === 'opened' && alert.ackedAt !== null) {
          log.info({ alertId, channel }, 'alert acknowledged: its opened event is not delivered any more');
          return;
        }
        const body = eventBody(event, alert, Date.now());
        const result = channel === 'webhook' ? await this.postWebhook(body) : await this.publishNats(body);
        await store.recordDelivery({ alertId, event, channel, attempt, ...result });
        metrics.deliveries.inc({ channel, result: result.ok ? 'ok' : 'failed' });
        if (result.ok) return;
        log.warn({ alertId, event, channel, attempt, status: result.status, err: result.error }, 'alert delivery failed');
        if (attempt < maxAttempts) await sleep(backoffDelay(attempt - 1, this.retry), signal);
        else log.error({ alertId, event, channel, attempts: attempt }, 'alert delivery gave up');
      }
    } catch (err) {
      // PostgreSQL unreachable: the attempt could not be recorded; recover() picks it up after a restart.
      log.error({ alertId, event, channel, err: errorMessage(err) }, 'alert delivery interrupted');
    }
  }

  private async postWebhook(body: AlertEventBody): Promise<AttemptResult> {
    const { webhookUrl, webhookTimeoutMs } = this.o.config.brain.alerts;
    try {
      const res = await fetch(webhookUrl!, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'mprism-brain' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(webhookTimeoutMs),
      });
      // Drained so the connection can be reused; what the receiver says is not ours to keep.
      await res.arrayBuffer().catch(() => undefined);
      return { ok: res.ok, status: res.status, error: res.ok ? null : `HTTP ${res.status}` };
    } catch (err) {
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
      const why =
        err instanceof Error && err.name === 'TimeoutError'
          ? `no answer within ${webhookTimeoutMs} ms`
          : ((cause as { code?: unknown }).code as string | undefined) ?? errorMessage(cause);
      return { ok: false, status: null, error: why };
    }
  }

  private connection(): Promise<NatsConnection> {
    this.nats ??= connect({
      servers: natsUrl(this.o.config).split(','),
      name: 'mprism-brain-alerts',
      timeout: this.o.config.brain.alerts.webhookTimeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
    });
    return this.nats;
  }

  /** Core NATS: published and flushed (the server has it) within the timeout, or failed. */
  private async publishNats(body: AlertEventBody): Promise<AttemptResult> {
    const timeoutMs = this.o.config.brain.alerts.webhookTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      const nc = await this.connection().catch((err: unknown) => {
        this.nats = null; // the next attempt connects afresh
        throw err;
      });
      nc.publish(eventSubject(this.o.config.brain.alerts.natsSubject, body.event), JSON.stringify(body));
      await Promise.race([
        nc.flush(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`NATS did not confirm within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return { ok: true, status: null, error: null };
    } catch (err) {
      return { ok: false, status: null, error: errorMessage(err) || String((err as { code?: unknown }).code) };
    } finally {
      clearTimeout(timer);
    }
  }
}
