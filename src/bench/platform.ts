import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { sleep } from '../lib/backoff.js';
import { connectNats } from '../lib/bus/connection.js';
import { ensureStreams } from '../lib/bus/streams.js';
import type { Config, Venue } from '../lib/config/schema.js';
import { loadConfig } from '../lib/config/load.js';
import { freePorts } from '../lib/infra/free-port.js';
import { startLocalServer, stopLocalServer } from '../lib/infra/local-servers.js';
import { coverageFile, readCoverage, type PersistedStream } from '../lib/feeds/coverage.js';
import { createClickHouse, detectDialect, selectRows } from '../lib/store/client.js';
import { ensureSchema } from '../lib/store/tables.js';
import { daemonArgs } from '../lib/supervisor/daemon-command.js';
import { PACKAGE_ROOT } from '../lib/paths.js';

export type BenchDaemon = 'simulator' | 'collector' | 'storage' | 'replication';

/** The four venues with both trades and books, and each one's symbol for a base coin. */
export const VENUE_SYMBOLS: Record<Exclude<Venue, 'deribit_derivatives'>, (base: string) => string> = {
  binance_spot: (b) => `${b}USDT`,
  binance_derivatives: (b) => `${b}USDT`,
  okx_spot: (b) => `${b}-USDT`,
  okx_derivatives: (b) => `${b}-USDT-SWAP`,
};

export interface BenchVenueSettings {
  enabled: boolean;
  symbols: string[];
  dataTypes: string[];
  apiKey?: string;
}

/** collector.venues for trades and books of `bases` on the four venues (Deribit off): one trade stream per venue and base. */
export function tradeAndBookVenues(bases: readonly string[]): Record<string, BenchVenueSettings> {
  const venues: Record<string, BenchVenueSettings> = { deribit_derivatives: { enabled: false, symbols: ['BTC'], dataTypes: ['volatility_index'] } };
  for (const [venue, symbolOf] of Object.entries(VENUE_SYMBOLS)) venues[venue] = { enabled: true, symbols: bases.map(symbolOf), dataTypes: ['orderbook', 'trade'] };
  return venues;
}

/**
 * As tradeAndBookVenues, with every data type the shipped config collects on each venue (funding,
 * open interest, liquidations and the long/short ratios on the derivatives venues), and Deribit's
 * volatility indices on: what a full deployment of that many symbols keeps in the collector.
 * Deribit publishes a DVOL index for BTC and ETH only, so it has those two whatever `bases` holds.
 */
export function everyTypeVenues(bases: readonly string[]): Record<string, BenchVenueSettings> {
  const shipped = loadConfig({ file: join(PACKAGE_ROOT, 'config', 'mprism.yaml'), env: {} }).collector.venues;
  const venues: Record<string, BenchVenueSettings> = { deribit_derivatives: { enabled: true, symbols: ['BTC', 'ETH'], dataTypes: [...shipped.deribit_derivatives.dataTypes] } };
  for (const [venue, symbolOf] of Object.entries(VENUE_SYMBOLS)) {
    venues[venue] = { enabled: true, symbols: bases.map(symbolOf), dataTypes: [...shipped[venue as keyof typeof VENUE_SYMBOLS].dataTypes] };
  }
  return venues;
}
export type BenchServer = 'nats' | 'clickhouse-hot' | 'clickhouse-cold' | 'redis';

/** The ports a bench platform runs on, all free ones picked at start. */
export interface BenchPorts {
  nats: number;
  natsMonitor: number;
  clickhouseHttp: number;
  clickhouseTcp: number;
  coldHttp: number;
  coldTcp: number;
  redis: number;
  simulator: number;
  collector: number;
  storage: number;
  replication: number;
}

export interface BenchPlatformOptions {
  /** Settings on top of the defaults and the private ports: simulator, collector, storage... */
  settings(ports: BenchPorts): Record<string, unknown>;
  /** Extra node arguments per daemon (e.g. a CPU profile). */
  nodeArgs?: (daemon: BenchDaemon) => string[];
  /** Also a cold clickhouse-server (for the replication daemon and `mprism integrity`). */
  cold?: boolean;
}

const STOP_TIMEOUT_MS = 15_000;
const CLI_MAIN = join(PACKAGE_ROOT, 'dist', 'cli.js');
/** `mprism integrity` that has not answered in this long is killed (and counts as a failed check). */
const INTEGRITY_CLI_TIMEOUT_MS = 120_000;
/** How long the simulator runs on to let the next trades close the breaks the collector knows of. */
const RESUME_TO_CLOSE_BREAKS_MS = 3000;
/** What the collector's coverage file (written every second) needs to show the last trades sent. */
const COVERAGE_SETTLE_MS = 3000;
const CLOCK_TICKS = 100;

/** utime + stime of a process, seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Peak resident set size of a process, MiB. */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** Resident set size of a process now, MiB. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/**
 * How long the bench waits for a daemon's answer (the simulator's /stats, its controls). Generous:
 * on a saturated machine (400 books at 10 snapshots a second) the simulator answered /stats in half
 * a second on average and in over 5 s at times, and the bench measures that machine, not its probe.
 */
const BENCH_HTTP_TIMEOUT_MS = 30_000;

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(BENCH_HTTP_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** One trade stream as the simulator reports what it sent: every id from first to last. */
export interface StreamSent {
  venue: string;
  instrument: string;
  firstId: number;
  lastId: number;
}

export const totalSent = (streams: readonly StreamSent[]): number => streams.reduce((n, s) => n + s.lastId - s.firstId + 1, 0);

interface RecordedHole {
  venue: string;
  instrument: string;
  fromTime: number;
  toTime: number;
  firstId: bigint | null;
  lastId: bigint | null;
}

/** Of every id from the first to the last sent, stream by stream, how many `database` lacks and how many it holds twice. */
async function compareTier(client: ClickHouseClient, database: string, sent: readonly StreamSent[]): Promise<{ missing: number; duplicates: number }> {
  let missing = 0;
  let duplicates = 0;
  for (const s of sent) {
    const [r] = await selectRows<{ d: string; n: string }>(
      client,
      `SELECT uniqExact(trade_id) AS d, count() AS n FROM ${database}.trades WHERE venue = '${s.venue}' AND instrument = '${s.instrument}' AND toUInt64OrZero(trade_id) BETWEEN ${s.firstId} AND ${s.lastId}`,
    );
    missing += s.lastId - s.firstId + 1 - Number(r?.d ?? 0);
    duplicates += Number(r?.n ?? 0) - Number(r?.d ?? 0);
  }
  return { missing, duplicates };
}

/** Ranges of ids in [first, last] that `present` lacks, with the event times of the trades on either side. */
function missingRanges(s: StreamSent, present: ReadonlyMap<number, number>): { from: number; to: number; before: number | null; after: number | null }[] {
  const ranges: { from: number; to: number; before: number | null; after: number | null }[] = [];
  let start: number | null = null;
  for (let id = s.firstId; id <= s.lastId + 1; id++) {
    const here = id <= s.lastId ? present.has(id) : true;
    if (!here && start === null) start = id;
    if (here && start !== null) {
      ranges.push({ from: start, to: id - 1, before: present.get(start - 1) ?? null, after: id <= s.lastId ? (present.get(id) ?? null) : null });
      start = null;
    }
  }
  return ranges;
}

/**
 * Ids of a missing range that no recorded hole covers. A hole with id bounds covers the ids inside
 * them (a range may be split over several, e.g. a dropped connection and the bus loss around it); one
 * without covers the whole range when the trades on either side fall between its times.
 */
function uncovered(range: { from: number; to: number; before: number | null; after: number | null }, holes: readonly RecordedHole[]): number {
  const byTime = holes.some(
    (h) => (h.firstId === null || h.lastId === null) && (range.before === null || range.before >= h.fromTime) && (range.after === null || range.after <= h.toTime),
  );
  if (byTime) return 0;
  const bounded = holes.filter((h) => h.firstId !== null && h.lastId !== null);
  let n = 0;
  for (let id = BigInt(range.from); id <= BigInt(range.to); id++) if (!bounded.some((h) => (h.firstId as bigint) <= id && id <= (h.lastId as bigint))) n++;
  return n;
}

/**
 * A private platform for one bench run: its own MPRISM_HOME in a temp dir, nats-server and
 * clickhouse-server (hot) on free ports with streams and schema in place, and the daemons it is
 * asked to spawn, as the supervisor would (without one: a bench decides what stays down).
 */
export class BenchPlatform {
  /** Platforms started and not yet stopped: an interrupted bench stops them (stopAllBenchPlatforms). */
  private static readonly running = new Set<BenchPlatform>();
  private readonly children = new Map<BenchDaemon, ChildProcess>();
  private readonly serverPids = new Map<BenchServer, number>();
  /** Every server a start was tried for: stopped at the end even if its start failed halfway. */
  private readonly servers = new Set<BenchServer>();

  private constructor(
    readonly home: string,
    readonly config: Config,
    readonly env: NodeJS.ProcessEnv,
    readonly ports: BenchPorts,
    readonly ch: ClickHouseClient,
    /** The cold server's client, when the platform has one (`cold`). */
    private readonly coldCh: ClickHouseClient | null,
    private readonly opts: BenchPlatformOptions,
  ) {}

  static async start(opts: BenchPlatformOptions): Promise<BenchPlatform> {
    const home = mkdtempSync(join(tmpdir(), 'mprism-bench-'));
    let config: Config | null = null;
    try {
      const free = await freePorts(11);
      const port = (i: number) => free[i] as number;
      const ports: BenchPorts = {
        nats: port(0),
        natsMonitor: port(1),
        clickhouseHttp: port(2),
        clickhouseTcp: port(3),
        redis: port(4),
        simulator: port(5),
        collector: port(6),
        storage: port(7),
        coldHttp: port(8),
        coldTcp: port(9),
        replication: port(10),
      };
      const configFile = join(home, 'mprism.yaml');
      const settings = opts.settings(ports);
      const section = (name: string) => (settings[name] as Record<string, unknown> | undefined) ?? {};
      writeFileSync(
        configFile,
        stringify({
          ...settings,
          nats: { port: ports.nats, monitorPort: ports.natsMonitor, ...section('nats') },
          clickhouse: { hot: { httpPort: ports.clickhouseHttp, tcpPort: ports.clickhouseTcp }, cold: { httpPort: ports.coldHttp, tcpPort: ports.coldTcp } },
          redis: { port: ports.redis },
          simulator: { port: ports.simulator, ...section('simulator') },
          collector: { port: ports.collector, ...section('collector') },
          storage: { port: ports.storage, ...section('storage') },
          replication: { port: ports.replication, ...section('replication') },
        }),
      );
      const env = { ...process.env, MPRISM_HOME: home, MPRISM_CONFIG: configFile, MPRISM_LOG_LEVEL: 'warn', MPRISM_SIMULATE: '1' };
      config = loadConfig({ env });
      const platform = new BenchPlatform(home, config, env, ports, createClickHouse(config.clickhouse.hot), opts.cold === true ? createClickHouse(config.clickhouse.cold) : null, opts);
      try {
        // Both settled before anything is stopped: a server still starting would outlive stop().
        // Replication (with cold) copies a table only while it holds that table's lease in Redis.
        const servers: BenchServer[] = ['nats', 'clickhouse-hot', ...(opts.cold === true ? (['clickhouse-cold', 'redis'] as const) : [])];
        const started = await Promise.allSettled(servers.map((server) => platform.startServer(server)));
        for (const s of started) if (s.status === 'rejected') throw s.reason;
        const nc = await connectNats(config, 'bench');
        try {
          await ensureStreams(await nc.jetstreamManager(), config);
        } finally {
          // Left open, the client would try to reconnect to the stopped server forever.
          await nc.close();
        }
        await ensureSchema(platform.ch, platform.database, await detectDialect(platform.ch));
        if (platform.coldCh !== null) await ensureSchema(platform.coldCh, config.clickhouse.cold.database, await detectDialect(platform.coldCh));
        BenchPlatform.running.add(platform);
        return platform;
      } catch (err) {
        await platform.stop().catch(() => {});
        throw err;
      }
    } catch (err) {
      if (config === null) rmSync(home, { recursive: true, force: true });
      throw err;
    }
  }

  get database(): string {
    return this.config.clickhouse.hot.database;
  }

  async startServer(server: BenchServer): Promise<void> {
    this.servers.add(server);
    const status = await startLocalServer(this.config, server);
    this.serverPids.set(server, status.pid ?? -1);
  }

  /** A crash: the server is killed (and gone when this resolves) and stays down until startServer(). */
  async killServer(server: BenchServer): Promise<void> {
    const pid = this.serverPids.get(server);
    if (pid === undefined || pid <= 0) throw new Error(`${server}: no pid to kill`);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; ; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      if (i > 100) throw new Error(`${server} (pid ${pid}) still running 10 s after SIGKILL`);
      await sleep(100);
    }
  }

  spawn(daemon: BenchDaemon): void {
    // The flags the supervisor gives each daemon: a bench measures the daemons as they ship.
    const args = [...(this.opts.nodeArgs?.(daemon) ?? []), ...daemonArgs(daemon, this.config)];
    this.children.set(daemon, spawn(process.execPath, args, { env: this.env, stdio: ['ignore', 'ignore', 'inherit'] }));
  }

  /** Sends a spawned daemon a signal (SIGSTOP/SIGCONT: a frozen process, as a long GC pause or a busy machine makes one). */
  signal(daemon: BenchDaemon, signal: NodeJS.Signals): void {
    this.children.get(daemon)?.kill(signal);
  }

  /** Pids of every process of the platform, servers included. */
  pids(): Map<BenchDaemon | 'nats' | 'clickhouse', number> {
    const pids = new Map<BenchDaemon | 'nats' | 'clickhouse', number>([
      ['nats', this.serverPids.get('nats') ?? -1],
      ['clickhouse', this.serverPids.get('clickhouse-hot') ?? -1],
    ]);
    for (const [name, child] of this.children) pids.set(name, child.pid ?? -1);
    return pids;
  }

  /** Throws when a spawned daemon has exited. */
  checkAlive(): void {
    for (const [name, child] of this.children) if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode}`);
  }

  simUrl(path: string): string {
    return `http://127.0.0.1:${this.ports.simulator}${path}`;
  }

  async waitForSimulator(): Promise<void> {
    for (let i = 0; ; i++) {
      if (await getJson(this.simUrl('/health')).then(() => true, () => false)) return;
      if (i > 100) throw new Error('simulator did not come up');
      await sleep(100);
    }
  }

  /** Trade streams the simulator has sent, each with its first and last id. */
  async sent(): Promise<StreamSent[]> {
    const stats = await getJson<{ venues: Record<string, { trades: Record<string, { firstId: number | null; lastId: number | null }> }> }>(this.simUrl('/stats'));
    const streams: StreamSent[] = [];
    for (const [venue, v] of Object.entries(stats.venues)) {
      for (const [instrument, s] of Object.entries(v.trades)) if (s.firstId !== null && s.lastId !== null) streams.push({ venue, instrument, firstId: s.firstId, lastId: s.lastId });
    }
    return streams;
  }

  /** The collector's coverage file of its trade streams by `venue/instrument`: newest trade stored, open break. */
  tradeCoverage(): Map<string, PersistedStream> {
    const streams = readCoverage(coverageFile(this.home), Date.now()).streams.filter((c) => c.identity.dataType === 'trade');
    return new Map(streams.map((c) => [`${c.identity.venue}/${c.identity.instrument}`, c]));
  }

  /**
   * Pauses the simulator once the collector has caught up with it: each trade stream's newest trade
   * stored (coverage file) is the last one sent, or the collector knows the stream broke. A break is
   * bounded, and its hole recorded, by the stream's next trade, so the simulator runs on for a few
   * seconds while any is open and is paused again. Gives up at `timeoutMs`; the streams that had
   * then neither caught up nor broken (data still on its way, or a hole in the making that nothing
   * reports), or whose break no trade had closed, are returned, each saying which.
   */
  async pauseCaughtUp(timeoutMs: number): Promise<{ sent: StreamSent[]; behind: string[]; resumes: number }> {
    const deadline = Date.now() + timeoutMs;
    for (let resumes = 0; ; resumes++) {
      await fetch(this.simUrl('/control/pause'), { method: 'POST' });
      const sent = await this.sent();
      const pausedAt = Date.now();
      let behind: StreamSent[] = [];
      let broken: StreamSent[] = [];
      for (;;) {
        const coverage = this.tradeCoverage();
        const state = (s: StreamSent) => coverage.get(`${s.venue}/${s.instrument}`);
        broken = sent.filter((s) => (state(s)?.broken ?? null) !== null);
        behind = sent.filter((s) => {
          const c = state(s);
          const lastId = c?.last?.id ?? null;
          return c === undefined || (c.broken === null && (lastId === null || BigInt(lastId) < BigInt(s.lastId)));
        });
        // Past the deadline, still a few coverage writes (1 s apart) to take in what was just sent.
        if (behind.length === 0 || (Date.now() > deadline && Date.now() - pausedAt > COVERAGE_SETTLE_MS)) break;
        this.checkAlive();
        await sleep(500);
      }
      const describe = (s: StreamSent, why: string) => `${s.venue} ${s.instrument} (last sent ${s.lastId}): ${why}`;
      if (broken.length === 0 || Date.now() > deadline) {
        return { sent, behind: [...behind.map((s) => describe(s, 'not caught up, no break known')), ...broken.map((s) => describe(s, 'break still open'))], resumes };
      }
      await fetch(this.simUrl('/control/resume'), { method: 'POST' });
      await sleep(RESUME_TO_CLOSE_BREAKS_MS);
    }
  }

  /**
   * Warm-up: the simulator is sending all `streams` trade streams (a client subscribed to each) and
   * hot has begun to fill. Not "every stream in hot": a design that cannot keep up may take minutes.
   */
  async waitForTradesFlowing(streams: number, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while ((await this.sent()).length < streams || (await this.count('trades')) === 0) {
      if (Date.now() > end) throw new Error(`the simulator was not sending all ${streams} trade streams, or nothing reached hot, within ${timeoutMs / 1000} s`);
      this.checkAlive();
      await sleep(250);
    }
  }

  async count(table: string, where = '1'): Promise<number> {
    return Number((await selectRows<{ n: string }>(this.ch, `SELECT count() AS n FROM ${this.database}.${table} WHERE ${where}`))[0]?.n ?? 0);
  }

  /** Ground truth, stream by stream: of every id from the first to the last sent, how many hot lacks and how many it holds twice. */
  async compareWithSent(sent: readonly StreamSent[], tier: 'hot' | 'cold' = 'hot'): Promise<{ missing: number; duplicates: number }> {
    if (tier === 'hot') return compareTier(this.ch, this.database, sent);
    if (this.coldCh === null) throw new Error('this bench platform has no cold server (start it with `cold: true`)');
    return compareTier(this.coldCh, this.config.clickhouse.cold.database, sent);
  }

  /**
   * `mprism integrity --json` against this platform, as an operator would run it: its exit status
   * (0 ok, 1 problems) and report.
   */
  async integrity(since: string): Promise<{ status: number; ok: boolean; problems: string[] }> {
    // As tests/helpers/cli.ts runs the CLI: never throwing on a non-zero exit, killed at the timeout.
    const r = await execa(process.execPath, [CLI_MAIN, 'integrity', '--since', since, '--json'], { env: this.env, reject: false, timeout: INTEGRITY_CLI_TIMEOUT_MS, stdin: 'ignore' });
    const status = r.exitCode ?? -1;
    const out = r.stdout;
    const err = r.failed && r.exitCode === undefined ? r.message : r.stderr;
    try {
      const report = JSON.parse(out) as { ok?: unknown; tables?: { table?: string; problems?: unknown[] }[]; problems?: unknown[] };
      const problems = [...(report.problems ?? []).map(String), ...(report.tables ?? []).flatMap((t) => (t.problems ?? []).map((p) => `${t.table}: ${String(p)}`))];
      return { status, ok: report.ok === true, problems };
    } catch {
      return { status, ok: false, problems: [`integrity printed no report (exit ${status}): ${(err || out).trim().slice(0, 500)}`] };
    }
  }

  /**
   * Trades missing from hot that no hole the collector recorded covers: a hole nothing reports, the
   * worst failure. Returns the trade holes recorded and, for each uncovered range, a line naming it.
   */
  async missingOutsideHoles(sent: readonly StreamSent[]): Promise<{ holes: number; silentlyMissing: number; silentRanges: string[] }> {
    const holes = (
      await selectRows<{ venue: string; instrument: string; from_ms: string; to_ms: string; first: string; last: string }>(
        this.ch,
        // A hole's first row is its `open` one; the same hole found again adds rows with its id.
        `SELECT venue, instrument, toUInt64(from_time) AS from_ms, toUInt64(to_time) AS to_ms, first_missing_id AS first, last_missing_id AS last FROM ${this.database}.stream_holes WHERE data_type = 'trade' AND state = 'open' ORDER BY hole_id LIMIT 1 BY hole_id`,
      )
    ).map(
      (h): RecordedHole => ({
        venue: h.venue,
        instrument: h.instrument,
        fromTime: Number(h.from_ms),
        toTime: Number(h.to_ms),
        firstId: /^\d+$/.test(h.first) ? BigInt(h.first) : null,
        lastId: /^\d+$/.test(h.last) ? BigInt(h.last) : null,
      }),
    );
    let silentlyMissing = 0;
    const silentRanges: string[] = [];
    for (const s of sent) {
      const rows = await selectRows<{ id: string; t: string }>(
        this.ch,
        `SELECT toUInt64OrZero(trade_id) AS id, toUInt64(min(event_time)) AS t FROM ${this.database}.trades WHERE venue = '${s.venue}' AND instrument = '${s.instrument}' AND toUInt64OrZero(trade_id) BETWEEN ${s.firstId - 1} AND ${s.lastId} GROUP BY id`,
      );
      const present = new Map(rows.map((r) => [Number(r.id), Number(r.t)]));
      const streamHoles = holes.filter((h) => h.venue === s.venue && h.instrument === s.instrument);
      for (const range of missingRanges(s, present)) {
        const n = uncovered(range, streamHoles);
        silentlyMissing += n;
        const at = (ms: number | null) => (ms === null ? '?' : new Date(ms).toISOString());
        if (n > 0) silentRanges.push(`${s.venue} ${s.instrument}: ids ${range.from}..${range.to} (${n} outside recorded holes), between trades of ${at(range.before)} and ${at(range.after)}`);
      }
    }
    return { holes: holes.length, silentlyMissing, silentRanges };
  }

  /** Every platform still running, stopped (a bench interrupted by SIGINT or SIGTERM). */
  static async stopAll(): Promise<void> {
    await Promise.allSettled([...BenchPlatform.running].map((p) => p.stop()));
  }

  /** Stops the daemons (SIGTERM, then SIGKILL), the servers, and removes the home. */
  async stop(): Promise<void> {
    BenchPlatform.running.delete(this);
    await Promise.all(
      [...this.children.values()].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
    try {
      await Promise.all([this.ch.close(), this.coldCh?.close()]);
    } finally {
      await Promise.allSettled([...this.servers].map((server) => stopLocalServer(this.config, server, STOP_TIMEOUT_MS)));
      rmSync(this.home, { recursive: true, force: true });
    }
  }
}
