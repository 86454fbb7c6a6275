import { describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { handleBrainRequest, startBrainApi, type BrainApiSources } from '../../src/lib/brain/api.js';
import type { JobRun } from '../../src/lib/brain/history.js';
import type { JobName } from '../../src/lib/brain/schema.js';

function sources(overrides: Partial<BrainApiSources> = {}) {
  const calls: { limit: number; job: JobName | undefined }[] = [];
  const metrics = new Registry();
  new Counter({ name: 'mprism_brain_test_total', help: 'test', registers: [metrics] }).inc(3);
  const run: JobRun = {
    id: 7,
    job: 'integrity',
    startedAt: '2025-01-01T00:00:00.000Z',
    finishedAt: '2025-01-01T00:00:01.000Z',
    ok: true,
    result: { ok: true },
    error: null,
  };
  const base: BrainApiSources = {
    health: async () => ({ ok: true, postgres: 'up' }),
    metrics,
    status: async () => ({ now: 'n', services: [], latestRuns: [run], openAlerts: [], errors: [] }),
    runs: async (limit, job) => {
      calls.push({ limit, job });
      return [run];
    },
    alerts: async () => [],
  };
  return { calls, sources: { ...base, ...overrides } };
}

describe('handleBrainRequest', () => {
  it('serves health with 200 when ok and 503 when not', async () => {
    expect((await handleBrainRequest('GET', '/health', sources().sources)).status).toBe(200);
    const down = await handleBrainRequest('GET', '/health', sources({ health: async () => ({ ok: false, postgres: 'down' }) }).sources);
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toEqual({ ok: false, postgres: 'down' });
  });

  it('serves prometheus metrics', async () => {
    const r = await handleBrainRequest('GET', '/metrics', sources().sources);
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/text\/plain/);
    expect(r.body).toContain('mprism_brain_test_total 3');
  });

  it('serves status, runs and alerts as JSON', async () => {
    const s = sources();
    const status = await handleBrainRequest('GET', '/api/v1/status', s.sources);
    expect(JSON.parse(status.body).latestRuns[0].id).toBe(7);
    const runs = await handleBrainRequest('GET', '/api/v1/runs?limit=5&job=integrity', s.sources);
    expect(runs.status).toBe(200);
    expect(JSON.parse(runs.body).runs).toHaveLength(1);
    expect(s.calls).toEqual([{ limit: 5, job: 'integrity' }]);
    await handleBrainRequest('GET', '/api/v1/runs', s.sources);
    expect(s.calls[1]).toEqual({ limit: 20, job: undefined });
    expect(JSON.parse((await handleBrainRequest('GET', '/api/v1/alerts', s.sources)).body)).toEqual({ alerts: [] });
  });

  it('rejects bad queries, unknown paths and other methods', async () => {
    const s = sources().sources;
    for (const q of ['limit=0', 'limit=abc', 'limit=1001', 'limit=-1', 'job=backup']) {
      const r = await handleBrainRequest('GET', `/api/v1/runs?${q}`, s);
      expect(r.status, q).toBe(400);
      expect(JSON.parse(r.body).error).toMatch(/limit|job/);
    }
    expect((await handleBrainRequest('GET', '/api/v2/nothing', s)).status).toBe(404);
    expect((await handleBrainRequest('POST', '/api/v1/alerts', s)).status).toBe(405);
  });

  it('maps a failing source to 503 with the error message', async () => {
    const r = await handleBrainRequest(
      'GET',
      '/api/v1/alerts',
      sources({ alerts: () => Promise.reject(new Error('connection refused')) }).sources,
    );
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({ error: 'connection refused' });
  });
});

describe('startBrainApi', () => {
  it('serves over HTTP and closes even with a keep-alive client connected', async () => {
    const api = await startBrainApi('127.0.0.1', 0, sources().sources);
    const res = await fetch(`http://127.0.0.1:${api.port}/api/v1/runs?limit=1`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect((await res.json()) as unknown).toMatchObject({ runs: [{ id: 7 }] });
    await api.close();
    await expect(fetch(`http://127.0.0.1:${api.port}/health`)).rejects.toThrow();
  });
});
