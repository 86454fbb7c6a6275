import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { HealthReport } from '../daemon-context.js';
import { errorMessage } from '../errors.js';
import type { Alert, JobRun } from './history.js';
import { JOB_NAMES, type JobName } from './schema.js';
import type { BrainStatus } from './status.js';

/** What the brain's HTTP API reads from; each route calls exactly one of these. */
export interface BrainApiSources {
  health(): Promise<HealthReport>;
  metrics: Registry;
  status(): Promise<BrainStatus>;
  runs(limit: number, job: JobName | undefined): Promise<JobRun[]>;
  alerts(): Promise<Alert[]>;
}

export interface ApiResponse {
  status: number;
  contentType: string;
  body: string;
}

export const DEFAULT_RUNS_LIMIT = 20;
export const MAX_RUNS_LIMIT = 1000;

const json = (status: number, value: unknown): ApiResponse => ({
  status,
  contentType: 'application/json',
  body: JSON.stringify(value),
});

function parseRunsQuery(params: URLSearchParams): { limit: number; job: JobName | undefined } | string {
  const rawLimit = params.get('limit');
  let limit = DEFAULT_RUNS_LIMIT;
  if (rawLimit !== null) {
    if (!/^\d+$/.test(rawLimit)) return `limit must be an integer from 1 to ${MAX_RUNS_LIMIT}`;
    limit = Number(rawLimit);
    if (limit < 1 || limit > MAX_RUNS_LIMIT) return `limit must be an integer from 1 to ${MAX_RUNS_LIMIT}`;
  }
  const rawJob = params.get('job');
  if (rawJob !== null && !(JOB_NAMES as readonly string[]).includes(rawJob)) {
    return `job must be one of ${JOB_NAMES.join(', ')}`;
  }
  return { limit, job: (rawJob ?? undefined) as JobName | undefined };
}

/**
 * Route one request. Separate from the socket so routing and error mapping are testable without
 * a server: 400 bad query, 404 unknown path, 405 not GET, 503 when a source fails.
 */
export async function handleBrainRequest(method: string, rawUrl: string, sources: BrainApiSources): Promise<ApiResponse> {
  const url = new URL(rawUrl, 'http://brain.invalid');
  const routes: Record<string, () => Promise<ApiResponse>> = {
    '/health': async () => {
      const report = await sources.health();
      return json(report.ok ? 200 : 503, report);
    },
    '/metrics': async () => ({
      status: 200,
      contentType: sources.metrics.contentType,
      body: await sources.metrics.metrics(),
    }),
    '/api/v1/status': async () => json(200, await sources.status()),
    '/api/v1/runs': async () => {
      const query = parseRunsQuery(url.searchParams);
      if (typeof query === 'string') return json(400, { error: query });
      return json(200, { runs: await sources.runs(query.limit, query.job) });
    },
    '/api/v1/alerts': async () => json(200, { alerts: await sources.alerts() }),
  };
  const route = routes[url.pathname];
  if (route === undefined) return json(404, { error: `no route ${url.pathname}` });
  if (method !== 'GET' && method !== 'HEAD') return json(405, { error: `${method} not allowed; use GET` });
  try {
    return await route();
  } catch (err) {
    return json(503, { error: errorMessage(err) });
  }
}

export interface BrainApiServer {
  server: Server;
  /** Actual port (useful when listening on 0). */
  port: number;
  close(): Promise<void>;
}

export function startBrainApi(host: string, port: number, sources: BrainApiSources): Promise<BrainApiServer> {
  const server = createServer((req, res) => {
    void handleBrainRequest(req.method ?? 'GET', req.url ?? '/', sources).then((r) => {
      res.writeHead(r.status, { 'content-type': r.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : r.body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      const actual = typeof address === 'object' && address !== null ? address.port : port;
      resolve({
        server,
        port: actual,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Keep-alive clients (a TUI polling every second) would otherwise hold close() open.
            server.closeAllConnections();
          }),
      });
    });
  });
}
