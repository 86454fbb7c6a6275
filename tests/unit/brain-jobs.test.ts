import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { RunOutcome, RunStart } from '../../src/lib/brain/history.js';
import { createBrainMetrics, runRecordedJob, type JobDeps, type RecordedRun } from '../../src/lib/brain/jobs.js';

class FakeStore {
  runs = new Map<number, { start: RunStart; outcome: RunOutcome | null }>();
  failStart = false;
  /** The fence recorded in brain_fence: a run under another one is not recorded. */
  currentFence = 4;

  async startRun(start: RunStart): Promise<number | null> {
    if (this.failStart) throw new Error('postgres down');
    if (start.fence !== this.currentFence) return null;
    const id = this.runs.size + 1;
    this.runs.set(id, { start, outcome: null });
    return id;
  }
  async finishRun(id: number, outcome: RunOutcome): Promise<void> {
    this.runs.get(id)!.outcome = outcome;
  }
}

function setup() {
  const registry = new Registry();
  const store = new FakeStore();
  const deps: JobDeps = { store, metrics: createBrainMetrics(registry), log: pino({ level: 'silent' }) };
  const count = async (result: string) => {
    const metric = await registry.getSingleMetric('mprism_brain_job_runs_total')!.get();
    return metric.values.find((v) => v.labels.result === result && v.labels.job === 'nightly')?.value ?? 0;
  };
  const started: number[] = [];
  const run = (fence = 4): RecordedRun => ({
    label: 'nightly',
    start: { job: 'integrity', taskId: 9, taskName: 'nightly', trigger: 'schedule', fence, brainId: 'b1' },
    onStarted: (id) => started.push(id),
  });
  return { store, deps, registry, count, run, started };
}

describe('runRecordedJob', () => {
  it('records a clean run under its task, trigger and fence', async () => {
    const { store, deps, count, registry, run, started } = setup();
    expect(await runRecordedJob(deps, run(), async () => ({ result: { ok: true, n: 1 }, problems: [] }))).toBe('ok');
    expect(store.runs.get(1)).toEqual({ start: run().start, outcome: { ok: true, result: { ok: true, n: 1 } } });
    expect(started).toEqual([1]);
    expect(await count('ok')).toBe(1);
    expect(await registry.getSingleMetricAsString('mprism_brain_job_duration_seconds')).toContain(
      'mprism_brain_job_duration_seconds_count{job="nightly"} 1',
    );
  });

  it('records problems as not ok, with the result', async () => {
    const { store, deps, count, run } = setup();
    expect(await runRecordedJob(deps, run(), async () => ({ result: { ok: false }, problems: ['trades: gap'] }))).toBe('problems');
    expect(store.runs.get(1)!.outcome).toEqual({ ok: false, result: { ok: false } });
    expect(await count('problems')).toBe(1);
  });

  it('records a throwing job as an error with its message', async () => {
    const { store, deps, count, run } = setup();
    expect(await runRecordedJob(deps, run(), () => Promise.reject(new Error('clickhouse-hot unreachable')))).toBe('error');
    expect(store.runs.get(1)!.outcome).toEqual({ ok: false, error: 'clickhouse-hot unreachable' });
    expect(await count('error')).toBe(1);
  });

  it('does not run a job whose fence is no longer the newest, and counts it as refused', async () => {
    const { store, deps, count, run, started } = setup();
    let ran = false;
    const result = await runRecordedJob(deps, run(3), async () => {
      ran = true;
      return { result: null, problems: [] };
    });
    expect(result).toBe('refused');
    expect(ran).toBe(false);
    expect(started).toEqual([]);
    expect(store.runs.size).toBe(0);
    expect(await count('refused')).toBe(1);
  });

  it('never throws when the history store is down, and does not run the job unrecorded', async () => {
    const { store, deps, count, run } = setup();
    store.failStart = true;
    let ran = false;
    const result = await runRecordedJob(deps, run(), async () => {
      ran = true;
      return { result: null, problems: [] };
    });
    expect(result).toBe('error');
    expect(ran).toBe(false);
    expect(await count('error')).toBe(1);
  });
});
