import { describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { MAX_RUNS_LIMIT, parseLimit } from '../../src/lib/brain/api-core.js';
import { BadRequestError, baseRoutes, handleBrainRequest, json, startBrainApi, type Route } from '../../src/lib/brain/api.js';
import { parseNewTask, parseTaskChange, parseTaskId } from '../../src/lib/brain/tasks.js';

const TOKEN = 'a'.repeat(43);

function routes(): { routes: Route[]; seen: unknown[] } {
  const metrics = new Registry();
  new Counter({ name: 'mprism_brain_test_total', help: 'test', registers: [metrics] }).inc(3);
  const seen: unknown[] = [];
  return {
    seen,
    routes: [
      ...baseRoutes({ health: async () => ({ ok: true, postgres: 'up' }), metrics }),
      { method: 'GET', path: '/api/v1/tasks/:id', handle: async (req) => json(200, { id: parseTaskId(req.params.id!) }) },
      {
        method: 'POST',
        path: '/api/v1/tasks',
        handle: async (req) => {
          seen.push(req.body);
          return json(201, parseNewTask(req.body));
        },
      },
      { method: 'GET', path: '/api/v1/runs', handle: async (req) => json(200, { limit: parseLimit(req.query) }) },
      { method: 'GET', path: '/api/v1/broken', handle: () => Promise.reject(new Error('connection refused')) },
    ],
  };
}

const request = (method: string, url: string, opts: { token?: string; body?: unknown } = {}) =>
  handleBrainRequest(
    {
      method,
      url,
      authorization: opts.token === undefined ? undefined : `Bearer ${opts.token}`,
      body: opts.body === undefined ? '' : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
    },
    routes().routes,
    TOKEN,
  );

describe('brain API routing and auth', () => {
  it('serves health and metrics without a token', async () => {
    expect((await request('GET', '/health')).status).toBe(200);
    const metrics = await request('GET', '/metrics');
    expect(metrics.body).toContain('mprism_brain_test_total 3');
  });

  it('refuses a mutation without the token or with a wrong one (401), and runs it with the right one', async () => {
    const body = { name: 'nightly', cron: '0 3 * * *', action: 'repair' };
    expect((await request('POST', '/api/v1/tasks', { body })).status).toBe(401);
    const wrong = await request('POST', '/api/v1/tasks', { body, token: 'b'.repeat(43) });
    expect(wrong.status).toBe(401);
    expect(wrong.body).not.toContain(TOKEN);
    const ok = await request('POST', '/api/v1/tasks', { body, token: TOKEN });
    expect(ok.status).toBe(201);
    expect(JSON.parse(ok.body)).toEqual({ ...body, timezone: 'UTC', params: {}, enabled: true });
  });

  it('answers 404 for an unknown path, 405 for a method the path does not take, 400 for a body that is not JSON', async () => {
    expect((await request('GET', '/api/v2/nothing')).status).toBe(404);
    const wrongMethod = await request('DELETE', '/api/v1/runs', { token: TOKEN });
    expect(wrongMethod.status).toBe(405);
    expect(JSON.parse(wrongMethod.body).error).toMatch(/use GET/);
    const notJson = await request('POST', '/api/v1/tasks', { token: TOKEN, body: '{nope' });
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body).field).toBe('body');
    // A broken percent-escape is the client's mistake: 400, not a URIError that would end the process.
    const badEscape = await request('GET', '/api/v1/tasks/%ZZ');
    expect([badEscape.status, JSON.parse(badEscape.body).field]).toEqual([400, 'path']);
  });

  it('names the bad field: id, limit', async () => {
    for (const id of ['abc', '0', '-1', '1.5', '99999999999999999']) {
      const r = await request('GET', `/api/v1/tasks/${id}`);
      expect(r.status, id).toBe(400);
      expect(JSON.parse(r.body).field).toBe('id');
    }
    expect(JSON.parse((await request('GET', '/api/v1/tasks/12')).body)).toEqual({ id: 12 });
    for (const q of ['limit=0', 'limit=abc', `limit=${MAX_RUNS_LIMIT + 1}`, 'limit=-1']) {
      const r = await request('GET', `/api/v1/runs?${q}`);
      expect(r.status, q).toBe(400);
      expect(JSON.parse(r.body).field).toBe('limit');
    }
    expect(JSON.parse((await request('GET', '/api/v1/runs')).body)).toEqual({ limit: 20 });
  });

  it('maps a failing source to 503 with its message', async () => {
    const r = await request('GET', '/api/v1/broken');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({ error: 'connection refused' });
  });
});

describe('task validation', () => {
  const valid = { name: 'integrity-fast', cron: '*/10 * * * * *', timezone: 'Europe/Berlin', action: 'integrity', params: { sinceSeconds: 60 }, enabled: false };

  it('accepts a full task, the 6-field seconds form and defaults', () => {
    expect(parseNewTask(valid)).toEqual(valid);
    expect(parseNewTask({ name: 'r', cron: '40 * * * *', action: 'retention' })).toEqual({
      name: 'r', cron: '40 * * * *', timezone: 'UTC', action: 'retention', params: {}, enabled: true,
    });
  });

  const field = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      if (err instanceof BadRequestError) return err.field;
      throw err;
    }
    throw new Error('accepted');
  };

  it('names the field of each bad input', () => {
    expect(field(() => parseNewTask({ ...valid, name: 'Has Spaces' }))).toBe('name');
    expect(field(() => parseNewTask({ ...valid, name: 'x'.repeat(64) }))).toBe('name');
    expect(field(() => parseNewTask({ ...valid, cron: '61 * * * *' }))).toBe('cron');
    expect(field(() => parseNewTask({ ...valid, cron: '* * *' }))).toBe('cron');
    expect(field(() => parseNewTask({ ...valid, timezone: 'Mars/Olympus' }))).toBe('timezone');
    expect(field(() => parseNewTask({ ...valid, action: 'backup' }))).toBe('action');
    expect(field(() => parseNewTask({ ...valid, params: [1] }))).toBe('params');
    expect(field(() => parseNewTask({ ...valid, enabled: 'yes' }))).toBe('enabled');
    expect(field(() => parseNewTask({ ...valid, colour: 'red' }))).toBe('colour');
    expect(field(() => parseNewTask({ cron: '* * * * *', action: 'health' }))).toBe('name');
    expect(field(() => parseNewTask([]))).toBe('body');
    expect(field(() => parseTaskChange({}))).toBe('body');
    expect(field(() => parseTaskChange({ cron: 'every minute' }))).toBe('cron');
  });

  it('the cron message says which part is wrong and which forms are expected', () => {
    expect(() => parseNewTask({ ...valid, cron: '61 * * * *' })).toThrow(/cron: invalid cron expression "61 \* \* \* \*": .*minute.*6 with seconds first/);
  });

  it('a change carries only the fields given', () => {
    expect(parseTaskChange({ enabled: false })).toEqual({ enabled: false });
    expect(parseTaskChange({ cron: '0 * * * *', params: { a: 1 } })).toEqual({ cron: '0 * * * *', params: { a: 1 } });
  });
});

describe('startBrainApi', () => {
  it('serves over HTTP, needs the token for mutations, and closes even with a keep-alive client connected', async () => {
    const api = await startBrainApi('127.0.0.1', 0, () => routes().routes, TOKEN);
    const res = await fetch(`http://127.0.0.1:${api.port}/api/v1/runs?limit=1`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ limit: 1 });
    const body = JSON.stringify({ name: 'x', cron: '* * * * *', action: 'health' });
    expect((await fetch(`http://127.0.0.1:${api.port}/api/v1/tasks`, { method: 'POST', body })).status).toBe(401);
    const ok = await fetch(`http://127.0.0.1:${api.port}/api/v1/tasks`, { method: 'POST', body, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(201);
    await api.close();
    await expect(fetch(`http://127.0.0.1:${api.port}/health`)).rejects.toThrow();
  });
});
