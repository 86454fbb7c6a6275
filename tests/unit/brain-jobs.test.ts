import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { RunOutcome } from '../../src/lib/brain/history.js';
import { alertMessage, createBrainMetrics, runRecordedJob, type JobDeps } from '../../src/lib/brain/jobs.js';
import type { AlertSeverity } from '../../src/lib/brain/schema.js';

class FakeStore {
  runs = new Map<number, RunOutcome | null>();
  alerts: { severity: AlertSeverity; source: string; message: string }[] = [];
  resolved: string[] = [];
  failStart = false;

  async startRun(): Promise<number> {
    if (this.failStart) throw new Error('postgres down');
    const id = this.runs.size + 1;
    this.runs.set(id, null);
    return id;
  }
  async finishRun(id: number, outcome: RunOutcome): Promise<void> {
    this.runs.set(id, outcome);
  }
  async raiseAlert(a: { severity: AlertSeverity; source: string; message: string }) {
    this.alerts.push(a);
    return { id: 1, createdAt: '', resolvedAt: null, ...a };
  }
  async resolveAlerts(source: string): Promise<number> {
    this.resolved.push(source);
    return 1;
  }
}

function setup() {
  const registry = new Registry();
  const store = new FakeStore();
  const deps: JobDeps = { store, metrics: createBrainMetrics(registry), log: pino({ level: 'silent' }) };
  const count = async (result: string) => {
    const metric = await registry.getSingleMetric('mprism_brain_job_runs_total')!.get();
    return metric.values.find((v) => v.labels.result === result)?.value ?? 0;
  };
  return { store, deps, registry, count };
}

describe('runRecordedJob', () => {
  it('records a clean run and resolves the job alerts', async () => {
    const { store, deps, count, registry } = setup();
    expect(await runRecordedJob(deps, 'integrity', async () => ({ result: { ok: true, n: 1 }, problems: [] }))).toBe('ok');
    expect(store.runs.get(1)).toEqual({ ok: true, result: { ok: true, n: 1 } });
    expect(store.resolved).toEqual(['integrity']);
    expect(store.alerts).toEqual([]);
    expect(await count('ok')).toBe(1);
    expect(await registry.getSingleMetricAsString('mprism_brain_job_duration_seconds')).toContain(
      'mprism_brain_job_duration_seconds_count{job="integrity"} 1',
    );
  });

  it('records problems as not ok and raises a warning alert', async () => {
    const { store, deps, count } = setup();
    const result = await runRecordedJob(deps, 'integrity', async () => ({ result: { ok: false }, problems: ['trades: gap'] }));
    expect(result).toBe('problems');
    expect(store.runs.get(1)).toEqual({ ok: false, result: { ok: false } });
    expect(store.alerts).toEqual([{ severity: 'warning', source: 'integrity', message: 'integrity: 1 problem: trades: gap' }]);
    expect(store.resolved).toEqual([]);
    expect(await count('problems')).toBe(1);
  });

  it('records a throwing job as an error with a critical alert', async () => {
    const { store, deps, count } = setup();
    expect(await runRecordedJob(deps, 'integrity', () => Promise.reject(new Error('clickhouse-hot unreachable')))).toBe('error');
    expect(store.runs.get(1)).toEqual({ ok: false, error: 'clickhouse-hot unreachable' });
    expect(store.alerts[0]).toMatchObject({ severity: 'critical', message: 'integrity failed: clickhouse-hot unreachable' });
    expect(await count('error')).toBe(1);
  });

  it('never throws when the history store is down, and does not run the job unrecorded', async () => {
    const { store, deps, count } = setup();
    store.failStart = true;
    let ran = false;
    const result = await runRecordedJob(deps, 'integrity', async () => {
      ran = true;
      return { result: null, problems: [] };
    });
    expect(result).toBe('error');
    expect(ran).toBe(false);
    expect(await count('error')).toBe(1);
  });
});

describe('alertMessage', () => {
  it('lists the first problems and counts the rest', () => {
    expect(alertMessage('integrity', ['a', 'b', 'c', 'd', 'e'])).toBe('integrity: 5 problems: a; b; c (+2 more)');
  });
});
