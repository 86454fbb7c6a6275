import { access } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { WebSocketServer } from 'ws';
import { z } from 'zod';
import { VENUES, type Venue } from '../config/schema.js';
import { UnreachableError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { BinanceDerivativesSim } from './binance-derivatives.js';
import { BinanceSpotSim } from './binance-spot.js';
import { DeribitSim } from './deribit.js';
import { createSimMetrics } from './hub.js';
import { RateClock } from './market.js';
import { OkxSim } from './okx.js';
import { Replay, type ReplayStatus } from './replay.js';
import type { RestReply, SymbolSendStats, VenueContext, VenueSim, VenueStats } from './venue.js';

export type { SymbolSendStats } from './venue.js';

export interface SimulatorOptions {
  host: string;
  /** 0 picks a free port (tests); see SimulatorHandle.port. */
  port: number;
  /** Pre-created on every venue that has such an instrument (BTCUSDT -> BTC-USDT, BTC-USDT-SWAP on OKX). */
  symbols: readonly string[];
  /** Trades per second per instrument. */
  tradesPerSecond: number;
  seed: number;
  /** Unsent MiB per client before it is dropped as too slow; default 16. */
  slowClientBufferMiB?: number;
  /** A raw capture file to play instead of synthetic data for the venues it holds. */
  replay?: { file: string | null; speed: number };
  metrics: Registry;
  log: Logger;
  now?: () => number;
}

export interface SimulatorStats {
  /** binance_spot trades per symbol (the e2e test reads it). */
  trades: Record<string, SymbolSendStats>;
  venues: Record<Venue, VenueStats>;
  replay: ReplayStatus | null;
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

const target = { venue: z.enum(VENUES).optional(), instrument: z.string().min(1).optional() };
const faultSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('disconnect'), ...target }),
  z.strictObject({ kind: z.literal('gap'), ...target }),
  z.strictObject({ kind: z.literal('bad_checksum'), ...target }),
  z.strictObject({ kind: z.literal('malformed'), ...target }),
  z.strictObject({
    kind: z.literal('http_429'),
    venue: target.venue,
    count: z.number().int().positive().max(10_000).default(1),
    retryAfterSeconds: z.number().int().min(0).max(3600).default(1),
  }),
  z.strictObject({ kind: z.literal('stall'), venue: target.venue, seconds: z.number().positive().max(3600).default(10) }),
]);
export type Fault = z.infer<typeof faultSchema>;

const replaySchema = z.strictObject({ file: z.string().min(1).nullable(), speed: z.number().positive().max(10_000).default(1) });

/** Timer period of the generator: each tick emits everything due, so high rates need no finer timer. */
const TICK_MS = 10;
const HOUSEKEEPING_MS = 1000;
const MAX_BODY_BYTES = 64 * 1024;

/** `/binance_spot/api/v3/depth` -> binance_spot, `/api/v3/depth`. */
function splitVenue(path: string): { venue: Venue; route: string } | null {
  const m = /^\/([a-z_]+)(\/.*)$/.exec(path);
  const venue = VENUES.find((v) => v === m?.[1]);
  return venue === undefined || m === null ? null : { venue, route: m[2] ?? '/' };
}

/**
 * The exchange simulator: a seeded market model feeding every venue's WebSocket and REST routes
 * under `/<venue>` on one HTTP port, plus the control and observability routes (/health, /metrics,
 * /stats, /control/*).
 */
export async function startSimulator(opts: SimulatorOptions): Promise<SimulatorHandle> {
  const now = opts.now ?? Date.now;
  const metrics = createSimMetrics(opts.metrics);
  const ctx: VenueContext = { seed: opts.seed, slowClientBytes: (opts.slowClientBufferMiB ?? 16) * 1024 * 1024, metrics, log: opts.log, now };
  const sims = new Map<Venue, VenueSim>(
    [new BinanceSpotSim(ctx), new BinanceDerivativesSim(ctx), new OkxSim('okx_spot', ctx), new OkxSim('okx_derivatives', ctx), new DeribitSim(ctx)].map((s) => [s.venue, s]),
  );
  for (const sim of sims.values()) for (const s of opts.symbols) sim.preCreate(s);
  const clock = new RateClock(opts.tradesPerSecond, now());
  const venueFaults = new Map<Venue, Record<string, number>>(VENUES.map((v) => [v, {}]));
  const restRequests = new Map<Venue, number>(VENUES.map((v) => [v, 0]));
  const throttles = new Map<Venue, { remaining: number; retryAfterSeconds: number }>();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  let replay: Replay | null = null;
  let paused = false;

  const ticker = setInterval(() => {
    if (paused) return;
    const n = clock.due(now());
    for (const sim of sims.values()) sim.tick(n);
    // Write the tick's frames now, in the same turn: a trade counts as sent once a socket took it, and
    // nothing (a close frame read meanwhile) may change the socket between that count and the write.
    for (const sim of sims.values()) sim.hub.flush();
  }, TICK_MS);
  const housekeeping = setInterval(() => {
    for (const sim of sims.values()) sim.hub.housekeeping();
  }, HOUSEKEEPING_MS);
  housekeeping.unref();

  const stats = (): SimulatorStats => {
    const venues = Object.fromEntries(
      [...sims].map(([v, sim]) => [v, { ...sim.stats(), restRequests: restRequests.get(v) ?? 0, faults: { ...venueFaults.get(v) } }]),
    ) as Record<Venue, VenueStats>;
    return { trades: venues.binance_spot.trades, venues, replay: replay?.snapshot ?? null };
  };
  const connections = () => [...sims.values()].reduce((n, s) => n + s.hub.size, 0);
  const health = (): SimulatorHealth => ({ ok: true, paused, connections: connections(), symbols: opts.symbols, tradesPerSecond: opts.tradesPerSecond });

  function targets(venue: Venue | undefined): VenueSim[] {
    return venue === undefined ? [...sims.values()] : [sims.get(venue) as VenueSim];
  }

  /** Per venue, what `act` affected; venues it did not touch are left out. */
  function perVenue<T>(venue: Venue | undefined, act: (sim: VenueSim) => T, touched: (r: T) => boolean): Partial<Record<Venue, T>> {
    const out: Partial<Record<Venue, T>> = {};
    for (const sim of targets(venue)) {
      const r = act(sim);
      if (touched(r)) out[sim.venue] = r;
    }
    return out;
  }

  function applyFault(fault: Fault): Record<string, unknown> {
    metrics.faults.inc({ kind: fault.kind });
    const instrument = 'instrument' in fault ? (fault.instrument ?? null) : null;
    let result: Record<string, unknown>;
    let affected: Venue[];
    switch (fault.kind) {
      case 'disconnect': {
        const closed = perVenue(fault.venue, (s) => s.disconnect(instrument), (n) => n > 0);
        affected = Object.keys(closed) as Venue[];
        result = { closed: Object.values(closed).reduce((a, b) => a + b, 0), venues: closed };
        break;
      }
      case 'malformed': {
        const sent = perVenue(fault.venue, (s) => s.malformed(instrument), (n) => n > 0);
        affected = Object.keys(sent) as Venue[];
        result = { connections: Object.values(sent).reduce((a, b) => a + b, 0), venues: sent };
        break;
      }
      case 'gap':
      case 'bad_checksum': {
        const books = perVenue(fault.venue, (s) => (fault.kind === 'gap' ? s.gap(instrument) : s.badChecksum(instrument)), (ids) => ids.length > 0);
        affected = Object.keys(books) as Venue[];
        result = { books };
        break;
      }
      case 'http_429':
        affected = targets(fault.venue).map((s) => s.venue);
        for (const v of affected) throttles.set(v, { remaining: fault.count, retryAfterSeconds: fault.retryAfterSeconds });
        result = { venues: affected, count: fault.count, retryAfterSeconds: fault.retryAfterSeconds };
        break;
      case 'stall':
        affected = targets(fault.venue).map((s) => s.venue);
        for (const sim of targets(fault.venue)) sim.hub.stall(now() + fault.seconds * 1000);
        result = { venues: affected, seconds: fault.seconds };
        break;
    }
    for (const v of affected) {
      const counts = venueFaults.get(v) ?? {};
      counts[fault.kind] = (counts[fault.kind] ?? 0) + 1;
    }
    return result;
  }

  async function startReplay(file: string, speed: number): Promise<ReplayStatus> {
    await access(file);
    await replay?.stop();
    const next = new Replay(file, speed, sims, opts.log);
    replay = next;
    await next.start();
    return next.snapshot;
  }

  function venueRest(venue: Venue, route: string, query: URLSearchParams, headers: IncomingHttpHeaders): RestReply | null {
    const throttle = throttles.get(venue);
    const sim = sims.get(venue) as VenueSim;
    if (throttle !== undefined && throttle.remaining > 0) {
      throttle.remaining--;
      return sim.tooManyRequests(throttle.retryAfterSeconds);
    }
    const captured = replay?.restBody(venue, route, query) ?? null;
    if (captured !== null) return { status: 200, body: captured };
    return sim.rest(route, query, headers);
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const key = `${req.method ?? 'GET'} ${url.pathname}`;
    const venueRoute = req.method === 'GET' ? splitVenue(url.pathname) : null;
    if (venueRoute !== null) {
      const reply = venueRest(venueRoute.venue, venueRoute.route, url.searchParams, req.headers);
      const status = reply?.status ?? 404;
      restRequests.set(venueRoute.venue, (restRequests.get(venueRoute.venue) ?? 0) + 1);
      metrics.restRequests.inc({ venue: venueRoute.venue, status: String(status) });
      if (reply === null) return json(res, 404, { ok: false, error: `no route ${key}` });
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(reply.body);
      return;
    }
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
        if (!parsed.success) return json(res, 400, { ok: false, error: issues(parsed.error) });
        const detail = applyFault(parsed.data);
        opts.log.info({ fault: parsed.data, ...detail }, 'fault injected');
        return json(res, 200, { ok: true, fault: parsed.data.kind, ...detail });
      }
      case 'POST /control/replay': {
        const parsed = replaySchema.safeParse(await readJson(req));
        if (!parsed.success) return json(res, 400, { ok: false, error: issues(parsed.error) });
        if (parsed.data.file === null) {
          await replay?.stop();
          replay = null;
          return json(res, 200, { ok: true, replay: null });
        }
        try {
          return json(res, 200, { ok: true, replay: await startReplay(parsed.data.file, parsed.data.speed) });
        } catch (err) {
          return json(res, 400, { ok: false, error: errorMessage(err) });
        }
      }
      default:
        return json(res, 404, { ok: false, error: `no route ${key}` });
    }
  }

  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => json(res, 500, { ok: false, error: errorMessage(err) }));
  });
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const venueRoute = splitVenue(url.pathname);
    const accept = venueRoute === null ? null : (sims.get(venueRoute.venue)?.wsRoute(venueRoute.route, url.searchParams) ?? null);
    if (accept === null) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, accept);
  });

  const shutdown = async () => {
    clearInterval(ticker);
    clearInterval(housekeeping);
    await replay?.stop();
    for (const sim of sims.values()) sim.close();
    wss.close();
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UnreachableError('simulator', `${opts.host}:${opts.port}`, { cause: err })));
    server.listen(opts.port, opts.host, () => resolve());
  }).catch(async (err: unknown) => {
    await shutdown();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  opts.log.info({ port, symbols: opts.symbols, tradesPerSecond: opts.tradesPerSecond }, 'simulator listening');
  if (opts.replay?.file != null) {
    await startReplay(opts.replay.file, opts.replay.speed).catch((err: unknown) => opts.log.error({ err: errorMessage(err), file: opts.replay?.file }, 'replay did not start'));
  }

  return {
    port,
    stats,
    health,
    async close() {
      await shutdown();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
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
