import { request, createServer, type Server } from 'node:http';
import { existsSync, unlinkSync } from 'node:fs';
import { DAEMON_NAMES, INFRA_NAMES, type DaemonName, type InfraName } from '../paths.js';
import { UnreachableError, UsageError } from '../errors.js';
import type { StartResult, Supervisor } from './supervisor.js';
import type { SupervisorSnapshot } from './state.js';

/**
 * The supervisor's control API: HTTP over a unix socket in MPRISM_HOME/run, so only local users
 * with access to the home directory can drive it and no TCP port is taken.
 */
export interface ControlRequests {
  'GET /state': { req: undefined; res: SupervisorSnapshot };
  /** infra: local servers to start (or take over) before the daemons and to restart when they die. */
  'POST /start': { req: { names: DaemonName[]; simulate: boolean; infra?: InfraName[] }; res: StartResult };
  /** infra: local servers to stop watching (the caller is about to stop them). */
  'POST /stop': { req: { names: DaemonName[]; timeoutMs: number; infra?: InfraName[] }; res: SupervisorSnapshot };
  'POST /shutdown': { req: { timeoutMs: number }; res: { ok: true } };
}

function validNames(v: unknown): DaemonName[] {
  if (!Array.isArray(v) || !v.every((n) => DAEMON_NAMES.includes(n as DaemonName))) throw new UsageError(`names must be some of ${DAEMON_NAMES.join(', ')}`);
  return v as DaemonName[];
}

function validInfra(v: unknown): InfraName[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((n) => INFRA_NAMES.includes(n as InfraName))) throw new UsageError(`infra must be some of ${INFRA_NAMES.join(', ')}`);
  return v as InfraName[];
}

export function serveControl(socketPath: string, sup: Supervisor, onShutdown: () => void): Promise<Server> {
  if (existsSync(socketPath)) unlinkSync(socketPath); // we hold the supervisor lock, so it is a leftover
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      void (async () => {
        try {
          const input = body ? (JSON.parse(body) as Record<string, unknown>) : {};
          let out: unknown;
          switch (`${req.method} ${req.url}`) {
            case 'GET /state':
              out = sup.snapshot();
              break;
            case 'POST /start':
              out = await sup.start(validNames(input.names), input.simulate === true, validInfra(input.infra));
              break;
            case 'POST /stop':
              await sup.stop(validNames(input.names), Number(input.timeoutMs) || 10_000, validInfra(input.infra));
              out = sup.snapshot();
              break;
            case 'POST /shutdown':
              await sup.shutdown(Number(input.timeoutMs) || 10_000);
              out = { ok: true };
              setImmediate(onShutdown);
              break;
            default:
              res.writeHead(404).end();
              return;
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
        } catch (err) {
          res.writeHead(err instanceof UsageError ? 400 : 500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: (err as Error).message }));
        }
      })();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve(server));
  });
}

/** Call the supervisor; UnreachableError when it is not running. */
export function callSupervisor<K extends keyof ControlRequests>(
  socketPath: string,
  route: K,
  body?: ControlRequests[K]['req'],
  timeoutMs = 120_000,
): Promise<ControlRequests[K]['res']> {
  const [method, path] = route.split(' ') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, timeout: timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`supervisor: ${text || `HTTP ${res.statusCode}`}`));
        resolve(JSON.parse(text) as ControlRequests[K]['res']);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`supervisor did not answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(new UnreachableError('supervisor', socketPath, { cause: err })));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
