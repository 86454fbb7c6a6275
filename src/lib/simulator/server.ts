import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { UnreachableError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { BinanceSpotSim, type SymbolSendStats } from './binance-spot.js';
import { RateClock, SymbolMarket } from './market.js';

export interface SimulatorOptions {
  host: string;
  /** 0 picks a free port (tests); see SimulatorHandle.port. */
  port: number;
  symbols: readonly string[];
  tradesPerSecond: number;
  seed: number;
  metrics: Registry;
  log: Logger;
  now?: () => number;
}

export interface SimulatorStats {
  trades: Record<string, SymbolSendStats>;
}

/** A type alias, not an interface, so it satisfies HealthReport's index signature. */
export type SimulatorHealth = {
  ok: boolean;
  paused: boolean;
  connections: number;
  symbols: readonly string[];
  tradesPerSecond: number;
};

export interface SimulatorHandle {
  readonly port: number;
  stats(): SimulatorStats;
  health(): SimulatorHealth;
  close(): Promise<void>;
}

const faultSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('disconnect') }),
  z.strictObject({ kind: z.literal('malformed') }),
  z.strictObject({ kind: z.literal('stall'), seconds: z.number().positive().max(3600).default(10) }),
]);
export type Fault = z.infer<typeof faultSchema>;

/** Timer period of the trade generator: each tick emits everything due, so high rates need no finer timer. */
const TICK_MS = 10;
const MAX_BODY_BYTES = 64 * 1024;

/**
 * The exchange simulator: a seeded market model feeding venue servers on one HTTP port, plus the
 * control and observability routes (/health, /metrics, /stats, /control/*).
 */
export async function startSimulator(opts: SimulatorOptions): Promise<SimulatorHandle> {
  const now = opts.now ?? Date.now;
  // Ids continue from the wall clock (100 per ms leaves room for 100k trades/s), so a restarted
  // simulator never reuses trade ids already stored downstream. Prices follow the seed.
  const firstId = now() * 100;
  const markets = opts.symbols.map((s) => new SymbolMarket(s, opts.seed, firstId));
  const clock = new RateClock(opts.tradesPerSecond, now());
  const binance = new BinanceSpotSim(opts.symbols, opts.metrics, opts.log);
  const faults = new Counter({ name: 'mprism_simulator_faults_total', help: 'Faults injected on request', labelNames: ['kind'], registers: [opts.metrics] });
  let paused = false;

  const ticker = setInterval(() => {
    if (paused) return;
    const t = now();
    const n = clock.due(t);
    for (let i = 0; i < n; i++) {
      for (const m of markets) binance.publish(m.next(t), t);
    }
  }, TICK_MS);

  const stats = (): SimulatorStats => ({ trades: binance.stats });
  const health = (): SimulatorHealth => ({ ok: true, paused, connections: binance.connectionCount, symbols: opts.symbols, tradesPerSecond: opts.tradesPerSecond });

  function applyFault(fault: Fault): Record<string, unknown> {
    faults.inc({ kind: fault.kind });
    switch (fault.kind) {
      case 'disconnect':
        return { closed: binance.disconnectAll() };
      case 'malformed':
        return { connections: binance.sendMalformed(now()) };
      case 'stall':
        binance.stall(now() + fault.seconds * 1000);
        return { seconds: fault.seconds };
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const key = `${req.method ?? 'GET'} ${path}`;
    switch (key) {
      case 'GET /health':
        return json(res, 200, health());
      case 'GET /metrics':
        res.writeHead(200, { 'content-type': opts.metrics.contentType });
        res.end(await opts.metrics.metrics());
        return;
      case 'GET /stats':
        return json(res, 200, stats());
      case 'POST /control/pause':
        paused = true;
        return json(res, 200, { ok: true, paused });
      case 'POST /control/resume':
        if (paused) clock.restart(now());
        paused = false;
        return json(res, 200, { ok: true, paused });
      case 'POST /control/fault': {
        const parsed = faultSchema.safeParse(await readJson(req));
        if (!parsed.success) return json(res, 400, { ok: false, error: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') });
        const detail = applyFault(parsed.data);
        opts.log.info({ fault: parsed.data, ...detail }, 'fault injected');
        return json(res, 200, { ok: true, fault: parsed.data.kind, ...detail });
      }
      default:
        return json(res, 404, { ok: false, error: `no route ${key}` });
    }
  }

  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => json(res, 500, { ok: false, error: errorMessage(err) }));
  });
  server.on('upgrade', (req, socket, head: Buffer) => {
    if (!binance.handleUpgrade(req, socket, head)) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UnreachableError('simulator', `${opts.host}:${opts.port}`, { cause: err })));
    server.listen(opts.port, opts.host, () => resolve());
  }).catch((err: unknown) => {
    clearInterval(ticker);
    binance.close();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  opts.log.info({ port, symbols: opts.symbols, tradesPerSecond: opts.tradesPerSecond }, 'simulator listening');

  return {
    port,
    stats,
    health,
    async close() {
      clearInterval(ticker);
      binance.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Body as JSON; an empty body is `{}` so `curl -X POST` with no data gets a schema error, not a crash. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}
