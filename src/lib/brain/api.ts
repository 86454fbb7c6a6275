import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { HealthReport } from '../daemon-context.js';
import { errorMessage } from '../errors.js';
import { tokenMatches } from './token.js';

export interface ApiResponse {
  status: number;
  contentType: string;
  body: string;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** One parsed request, as a route handler sees it. */
export interface ApiRequest {
  method: HttpMethod;
  /** Path parameters by name: `/api/v1/tasks/:id` gives { id }. */
  params: Readonly<Record<string, string>>;
  query: URLSearchParams;
  /** Parsed JSON body; undefined when there was none. */
  body: unknown;
}

export interface Route {
  method: HttpMethod;
  /** `/api/v1/tasks/:id`: segments starting with `:` are parameters. */
  path: string;
  handle(req: ApiRequest): Promise<ApiResponse>;
}

/** Thrown by handlers for bad input: 400 with the offending field named. */
export class BadRequestError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** Thrown by handlers for an id that does not exist: 404. */
export class NotFoundError extends Error {}

/** Thrown by handlers when the request conflicts with current state (a name taken): 409. */
export class ConflictError extends Error {}

/** Thrown by handlers when this brain cannot do it now (it does not lead): 503, the message says where to go. */
export class UnavailableError extends Error {}

export const json = (status: number, value: unknown): ApiResponse => ({
  status,
  contentType: 'application/json',
  body: JSON.stringify(value),
});

/** Request bodies are small JSON documents; anything larger is refused before parsing. */
export const MAX_BODY_BYTES = 64 * 1024;

function matchPath(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(':')) {
      if (g === '') return null;
      params[w.slice(1)] = decodeURIComponent(g);
    } else if (w !== g) return null;
  }
  return params;
}

export interface RawRequest {
  method: string;
  url: string;
  /** The Authorization header, if any. */
  authorization: string | undefined;
  /** Raw body text ('' when none). */
  body: string;
}

/**
 * Route one request. Separate from the socket so routing, auth and error mapping are testable
 * without a server: 401 a mutation without the token, 400 bad input (field named), 404 unknown path
 * or id, 405 a method the path does not take, 409 conflict, 503 when a source fails.
 */
export async function handleBrainRequest(raw: RawRequest, routes: readonly Route[], token: string): Promise<ApiResponse> {
  const method = (raw.method === 'HEAD' ? 'GET' : raw.method) as HttpMethod;
  let url: URL;
  let onPath: { route: Route; params: Record<string, string> | null }[];
  try {
    url = new URL(raw.url, 'http://brain.invalid');
    onPath = routes.map((r) => ({ route: r, params: matchPath(r.path, url.pathname) })).filter((m) => m.params !== null);
  } catch {
    // A malformed URL or percent-escape (`/api/v1/tasks/%ZZ`) is the client's mistake, never a crash.
    return json(400, { error: `malformed request path ${JSON.stringify(raw.url.slice(0, 200))}`, field: 'path' });
  }
  if (onPath.length === 0) return json(404, { error: `no route ${url.pathname}` });
  const match = onPath.find((m) => m.route.method === method);
  if (match === undefined) {
    const allowed = [...new Set(onPath.map((m) => m.route.method))].join(', ');
    return json(405, { error: `${raw.method} not allowed on ${url.pathname}; use ${allowed}` });
  }
  if (method !== 'GET') {
    const presented = /^Bearer (.+)$/i.exec(raw.authorization ?? '')?.[1];
    if (presented === undefined || !tokenMatches(presented, token)) {
      return json(401, { error: 'this request changes state: it needs Authorization: Bearer <token> (the token is in $MPRISM_HOME/brain.token)' });
    }
  }
  let body: unknown;
  if (raw.body.trim() !== '') {
    try {
      body = JSON.parse(raw.body) as unknown;
    } catch {
      return json(400, { error: 'body is not JSON', field: 'body' });
    }
  }
  try {
    return await match.route.handle({ method, params: match.params!, query: url.searchParams, body });
  } catch (err) {
    if (err instanceof BadRequestError) return json(400, { error: err.message, field: err.field });
    if (err instanceof NotFoundError) return json(404, { error: err.message });
    if (err instanceof ConflictError) return json(409, { error: err.message });
    return json(503, { error: errorMessage(err) });
  }
}

/** The routes every brain serves whatever else it does: health and metrics. */
export function baseRoutes(sources: { health(): Promise<HealthReport>; metrics: Registry }): Route[] {
  return [
    {
      method: 'GET',
      path: '/health',
      handle: async () => {
        const report = await sources.health();
        return json(report.ok ? 200 : 503, report);
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      handle: async () => ({ status: 200, contentType: sources.metrics.contentType, body: await sources.metrics.metrics() }),
    },
  ];
}

async function readBody(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface BrainApiServer {
  server: Server;
  /** Actual port (useful when listening on 0). */
  port: number;
  close(): Promise<void>;
}

export function startBrainApi(host: string, port: number, routes: () => readonly Route[], token: string): Promise<BrainApiServer> {
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req).catch(() => null);
      const r =
        body === null
          ? json(413, { error: `body larger than ${MAX_BODY_BYTES} bytes`, field: 'body' })
          : await handleBrainRequest({ method: req.method ?? 'GET', url: req.url ?? '/', authorization: req.headers.authorization, body }, routes(), token);
      res.writeHead(r.status, { 'content-type': r.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : r.body);
    })().catch((err: unknown) => {
      // Whatever one request hits must not take the brain down (an unhandled rejection would).
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `internal error: ${errorMessage(err)}` }));
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
