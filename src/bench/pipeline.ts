import { sleep } from '../lib/backoff.js';
import { errorMessage } from '../lib/errors.js';
import { fetchDaemonHealth } from '../lib/daemon-health.js';
import { selectRows } from '../lib/store/client.js';
import { BenchPlatform, cpuSeconds, everyTypeVenues, peakRssMiB, totalSent, tradeAndBookVenues, VENUE_SYMBOLS, type BenchDaemon } from './platform.js';
import { median, weightedPercentile } from './stats.js';

/**
 * The whole pipeline, really run: a private nats-server and clickhouse-server, and the simulator,
 * collector and storage daemons as their own processes (`node dist/daemons/main.js NAME`), with the
 * simulator at a given rate for a fixed time. Two modes in the same run, interleaved:
 *   naive:   one record per JetStream message (collector.publish.maxRecordsPerMessage 1) and one
 *            insert per fetch (storage.flushIntervalMs 1): the design this issue started from;
 *   batched: the configuration as shipped.
 * Per run: trades/s sent and in hot during the measured window, backlog at its end, p50/p99 from
 * the exchange's event time to queryable in hot, orderbook snapshots/s in hot, CPU seconds per 1k
 * trades and peak RSS per process. At the end of every run the simulator is paused once the
 * collector has caught up with it (or knows a stream broke: then it runs on a few seconds so that
 * the hole is bounded and recorded), and hot is compared with what it sent, id by id: a run that
 * lost or duplicated one trade is a FAILED run, whatever its speed; its message says how many of
 * the missing lie outside every hole the collector recorded, and which connections the simulator cut. Above what a mode sustains, the simulator keeps what the collector has not
 * read yet (its slow-client cut is lifted): hot/s in the window is then what that mode sustains,
 * and the ratio of the two modes' is the speed-up. Environment: MPRISM_BENCH_SECONDS (measured window, default 20),
 * MPRISM_BENCH_RATES (total trades/s, comma-separated; default `10000,40000`), MPRISM_BENCH_RUNS
 * (runs per mode and rate, default 3), MPRISM_BENCH_MODES (e.g. `batched` alone, to profile),
 * MPRISM_BENCH_SYMBOLS (symbols per venue, default 3; e.g. 100 for the collector's memory with many books),
 * MPRISM_BENCH_ALL_TYPES=1 (every data type of the shipped config on each venue, and Deribit's
 * volatility indices, instead of trades and books alone: see everyTypeVenues).
 */

/** MPRISM_BENCH_SYMBOLS (default 3) per venue: BTC, ETH, SOL, then made-up ones (XAA, XAB, ...). */
const SYMBOLS = Array.from({ length: Math.max(1, Number(process.env.MPRISM_BENCH_SYMBOLS ?? 3)) }, (_, i) =>
  i < 3 ? (['BTC', 'ETH', 'SOL'][i] as string) : `X${String.fromCharCode(65 + Math.floor((i - 3) / 26) % 26)}${String.fromCharCode(65 + ((i - 3) % 26))}`,
);
const STREAMS = Object.keys(VENUE_SYMBOLS).length * SYMBOLS.length;
const ALL_TYPES = process.env.MPRISM_BENCH_ALL_TYPES === '1';
const WARMUP_TIMEOUT_MS = 60_000;
const WARMUP_SETTLE_MS = 3_000;
const POLL_MS = 200;
const LAG_READ_MS = 1000;
/** Latency is measured over rows whose event time is this recent; later rows count as slower than it. */
const LATENCY_HORIZON_MS = 30_000;
const LATENCY_BUCKET_MS = 100;
/** Draining after the simulator is paused ends once hot has everything, or has not grown for this long. */
const DRAIN_IDLE_MS = 45_000;
/** After the window, how long the collector has to catch up with the simulator (or know a stream broke). */
const CATCH_UP_TIMEOUT_MS = 180_000;
/** A rate counts as sustained when hot took at least this share of what was sent in the window. */
const SUSTAINED_SHARE = 0.97;

type Mode = 'naive' | 'batched';
const ALL_MODES: readonly Mode[] = ['naive', 'batched'];
/** MPRISM_BENCH_MODES narrows the modes (e.g. to profile one); the ratio needs both. */
const MODES: readonly Mode[] = ALL_MODES.filter((m) => (process.env.MPRISM_BENCH_MODES ?? ALL_MODES.join(',')).split(',').includes(m));
const MODE_CONFIG: Record<Mode, { collector: Record<string, unknown>; storage: Record<string, unknown> }> = {
  naive: { collector: { publish: { maxRecordsPerMessage: 1 } }, storage: { flushIntervalMs: 1 } },
  batched: { collector: {}, storage: {} },
};

const PROCESSES = ['simulator', 'collector', 'storage', 'nats', 'clickhouse'] as const;
type ProcessName = (typeof PROCESSES)[number];

export interface PipelineRun {
  mode: Mode;
  rate: string;
  sentPerSecond: number;
  hotPerSecond: number;
  backlogAtEnd: number;
  drainSeconds: number;
  booksPerSecond: number;
  /** The book snapshot rate the collector's pacing set (per book per second, its /health), the lowest read in the window: below the configured rate means it thinned them. */
  snapshotRateMin: number;
  /** The collector's event-loop lag (p99 over 5 s, from its /health), the worst read in the window. */
  collectorLagMs: number;
  p50Ms: number;
  p99Ms: number;
  missing: number;
  duplicates: number;
  cpuPer1k: Record<ProcessName, number>;
  peakRssMiB: Record<ProcessName, number>;
  failure: string | null;
  /** Missing ranges no recorded hole covers, one line each (the first 20). */
  silentRanges: string[];
}

async function runOnce(mode: Mode, rate: string, seconds: number): Promise<PipelineRun> {
  const perStream = Math.max(1, Math.round(Number(rate) / STREAMS));
  const venues = ALL_TYPES ? everyTypeVenues(SYMBOLS) : tradeAndBookVenues(SYMBOLS);
  const platform = await BenchPlatform.start({
    settings: () => ({
      // A client that falls behind is not cut off here (the venues would): a stage that cannot keep
      // up then shows as backlog and drain time, and every run can still be held to zero loss.
      simulator: { tradesPerSecond: perStream, symbols: SYMBOLS.map((b) => `${b}USDT`), slowClientBufferMiB: 4096 },
      collector: { venues, ...MODE_CONFIG[mode].collector },
      storage: { ...MODE_CONFIG[mode].storage },
    }),
    // MPRISM_BENCH_PROFILE=collector,storage writes a V8 CPU profile of each to MPRISM_BENCH_PROFILE_DIR (default cwd).
    nodeArgs: (name: BenchDaemon) =>
      (process.env.MPRISM_BENCH_PROFILE ?? '').split(',').includes(name)
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MPRISM_BENCH_PROFILE_DIR ?? process.cwd()}`, `--cpu-prof-name=${name}-${mode}-${rate}-${Date.now()}.cpuprofile`]
        : [],
  });
  try {
    const { ch, database } = platform;
    platform.spawn('simulator');
    platform.spawn('storage');
    await platform.waitForSimulator();
    platform.spawn('collector');
    const pids = platform.pids();

    const count = (table: string, where = '1') => platform.count(table, where);
    // A few seconds after the warm-up, the measured window starts.
    await platform.waitForTradesFlowing(STREAMS, WARMUP_TIMEOUT_MS);
    await sleep(WARMUP_SETTLE_MS);

    const sentNow = () => platform.sent();
    const cpuNow = () => new Map([...pids].map(([name, pid]) => [name, cpuSeconds(pid)]));

    // Latency: rows per event-time bucket, polled; rows new since the last poll are as old as the
    // poll. Kept per bucket, so the window is cut by event time at the end, like windowRows below.
    const bucketCounts = new Map<number, number>();
    const samples: { bucket: number; ms: number; rows: number }[] = [];
    const pollLatency = async () => {
      const polledAt = Date.now();
      const rows = await selectRows<{ b: string; n: string }>(
        ch,
        `SELECT intDiv(event_time, ${LATENCY_BUCKET_MS}) AS b, count() AS n FROM ${database}.trades WHERE event_time >= ${polledAt - LATENCY_HORIZON_MS} GROUP BY b`,
      );
      for (const r of rows) {
        const b = Number(r.b);
        const n = Number(r.n);
        const before = bucketCounts.get(b) ?? 0;
        bucketCounts.set(b, n);
        if (n > before) samples.push({ bucket: b, ms: Math.max(0, polledAt - (b * LATENCY_BUCKET_MS + LATENCY_BUCKET_MS / 2)), rows: n - before });
      }
    };
    await pollLatency();

    // What the window is measured between: read the same way at its start and at its end.
    const snapshot = async () => ({ at: Date.now(), sent: totalSent(await sentNow()), hot: await count('trades'), books: await count('orderbooks'), cpu: cpuNow() });
    const start = await snapshot();
    // The collector's event-loop lag (its /health: p99 over 5 s) at its worst in the window.
    let collectorLagMs = 0;
    let snapshotRateMin = Number.NaN;
    let lagReadAt = 0;
    while (Date.now() - start.at < seconds * 1000) {
      await sleep(POLL_MS);
      await pollLatency();
      if (Date.now() - lagReadAt >= LAG_READ_MS) {
        lagReadAt = Date.now();
        const health = await fetchDaemonHealth(platform.ports.collector, 5000);
        const lag = health.answered ? (health.body as { eventLoopLagMs?: unknown }).eventLoopLagMs : undefined;
        if (typeof lag === 'number') collectorLagMs = Math.max(collectorLagMs, lag);
        const snapshotRate = health.answered ? (health.body as { bookSnapshotsPerSecond?: unknown }).bookSnapshotsPerSecond : undefined;
        if (typeof snapshotRate === 'number' && !(snapshotRate >= snapshotRateMin)) snapshotRateMin = snapshotRate;
      }
    }
    const end = await snapshot();
    const { at: t0, sent: sent0, hot: hot0, books: books0, cpu: cpu0 } = start;
    const { at: t1, sent: sent1, hot: hot1, books: books1, cpu: cpu1 } = end;
    const window = (t1 - t0) / 1000;

    // Paused once the collector has caught up with the simulator (or knows a stream broke, whose
    // hole the next trades then bound): compared earlier, a break not yet bounded would look like
    // a hole nothing reports. Latency keeps being recorded meanwhile.
    const drainStart = Date.now();
    let catchingUp = true;
    // Its failure is held until the catch-up is over: rejected unhandled, it would end the process
    // and leave the servers running.
    let pollFailure: unknown = null;
    const latencyPoller = (async () => {
      while (catchingUp) {
        await pollLatency();
        await sleep(POLL_MS);
      }
    })().catch((err: unknown) => void (pollFailure = err));
    const caughtUp = await platform.pauseCaughtUp(CATCH_UP_TIMEOUT_MS).finally(async () => {
      catchingUp = false;
      await latencyPoller;
    });
    if (pollFailure !== null) throw pollFailure;
    const sent = caughtUp.sent;
    const expected = totalSent(sent);
    // Drain: hot catches up with everything the simulator sent.
    let lastGrowth = Date.now();
    let lastHot = -1;
    for (;;) {
      const hot = await count('trades');
      await pollLatency();
      if (hot >= expected) break;
      if (hot > lastHot) {
        lastHot = hot;
        lastGrowth = Date.now();
      } else if (Date.now() - lastGrowth > DRAIN_IDLE_MS) break;
      await sleep(POLL_MS);
    }
    // From the end of the window until hot has everything: the collector's catch-up included.
    const drainSeconds = (Date.now() - drainStart) / 1000;
    const peak = new Map([...pids].map(([name, pid]) => [name, peakRssMiB(pid)]));

    // Ground truth, stream by stream: every id from the first to the last sent, in hot exactly once.
    const { missing, duplicates } = await platform.compareWithSent(sent);
    // Whole buckets inside the window (the first one after t0 may have been partly counted before it).
    const firstBucket = Math.floor(t0 / LATENCY_BUCKET_MS) + 1;
    const endBucket = Math.floor(t1 / LATENCY_BUCKET_MS);
    const latency: [number, number][] = samples.filter((x) => x.bucket >= firstBucket && x.bucket < endBucket).map((x) => [x.ms, x.rows]);
    const measuredRows = latency.reduce((n, [, c]) => n + c, 0);
    const inWindow = Math.max(0, hot1 - hot0);
    // Rows of the window's buckets never seen inside the latency horizon are slower than it.
    const windowRows = await count('trades', `event_time >= ${firstBucket * LATENCY_BUCKET_MS} AND event_time < ${endBucket * LATENCY_BUCKET_MS}`);
    const unseen = Math.max(0, windowRows - measuredRows);
    if (unseen > 0) latency.push([Number.POSITIVE_INFINITY, unseen]);
    const tradesInWindow = Math.max(1, sent1 - sent0);
    const cpuPer1k = Object.fromEntries(PROCESSES.map((p) => [p, (((cpu1.get(p) ?? 0) - (cpu0.get(p) ?? 0)) / tradesInWindow) * 1000])) as Record<ProcessName, number>;
    const peakRss = Object.fromEntries(PROCESSES.map((p) => [p, peak.get(p) ?? Number.NaN])) as Record<ProcessName, number>;
    // A loss is a failure either way; whether the collector recorded it as a hole says which kind.
    const { holes, silentlyMissing, silentRanges } = missing > 0 ? await platform.missingOutsideHoles(sent) : { holes: 0, silentlyMissing: 0, silentRanges: [] };
    const dropped = missing > 0 ? await simulatorDrops(platform) : '';
    const failure =
      missing > 0 || duplicates > 0 || caughtUp.behind.length > 0
        ? [
            ...(missing > 0 || duplicates > 0
              ? [`${missing} trades missing (${silentlyMissing} of them outside the ${holes} trade holes the collector recorded${dropped}) and ${duplicates} duplicated of ${expected} sent`]
              : []),
            ...(caughtUp.behind.length > 0 ? [`streams neither caught up nor bounded after ${CATCH_UP_TIMEOUT_MS / 1000} s: ${caughtUp.behind.join('; ')}`] : []),
          ].join('; ')
        : null;
    return {
      mode,
      rate,
      sentPerSecond: (sent1 - sent0) / window,
      hotPerSecond: inWindow / window,
      backlogAtEnd: Math.max(0, sent1 - hot1),
      drainSeconds,
      booksPerSecond: (books1 - books0) / window,
      snapshotRateMin,
      collectorLagMs,
      p50Ms: weightedPercentile(latency, 50),
      p99Ms: weightedPercentile(latency, 99),
      missing,
      duplicates,
      cpuPer1k,
      peakRssMiB: peakRss,
      failure,
      silentRanges: silentRanges.slice(0, 20),
    };
  } finally {
    await platform.stop();
  }
}

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : x > 0 ? '>30000' : 'n/a');

export async function runPipelineBench(print: (line: string) => void): Promise<PipelineRun[]> {
  const seconds = Number(process.env.MPRISM_BENCH_SECONDS ?? 20);
  const rates = (process.env.MPRISM_BENCH_RATES ?? '10000,40000').split(',').map((r) => r.trim());
  const runs = Number(process.env.MPRISM_BENCH_RUNS ?? 3);
  for (const r of rates) if (!(Number(r) > 0)) throw new Error(`MPRISM_BENCH_RATES: ${r} is not a positive number of trades/s`);
  print(`${STREAMS} trade streams and ${STREAMS} books (${SYMBOLS.length} symbols x 4 venues)${ALL_TYPES ? ', every other data type of the shipped config, and Deribit' : ''}, ${seconds} s measured per run, ${runs} interleaved runs per mode and rate`);
  print(`${'mode'.padEnd(8)} ${'rate'.padStart(6)}  ${'sent/s'.padStart(7)} ${'hot/s'.padStart(7)} ${'backlog'.padStart(8)} ${'drain s'.padStart(7)} ${'books/s'.padStart(7)} ${'snap min'.padStart(8)} ${'lag ms'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)}  cpu s/1k trades (sim col sto nats ch)  peak RSS MiB (sim col sto)  result`);
  const all: PipelineRun[] = [];
  for (let i = 0; i < runs; i++) {
    for (const rate of rates) {
      // Interleaved, and the order alternates, so drift of the machine falls on both modes alike.
      for (const mode of i % 2 === 0 ? MODES : [...MODES].reverse()) {
        let r: PipelineRun;
        try {
          r = await runOnce(mode, rate, seconds);
        } catch (err) {
          print(`${mode.padEnd(8)} ${rate.padStart(6)}  run failed: ${errorMessage(err)}`);
          process.exitCode = 1;
          continue;
        }
        all.push(r);
        const c = r.cpuPer1k;
        const m = r.peakRssMiB;
        print(
          `${mode.padEnd(8)} ${rate.padStart(6)}  ${fmt(r.sentPerSecond).padStart(7)} ${fmt(r.hotPerSecond).padStart(7)} ${fmt(r.backlogAtEnd).padStart(8)} ${fmt(r.drainSeconds, 1).padStart(7)} ${fmt(r.booksPerSecond).padStart(7)} ${fmt(r.snapshotRateMin, 1).padStart(8)} ${fmt(r.collectorLagMs).padStart(7)} ${fmt(r.p50Ms).padStart(7)} ${fmt(r.p99Ms).padStart(7)}  ` +
            `${[c.simulator, c.collector, c.storage, c.nats, c.clickhouse].map((x) => fmt(x, 3)).join(' ')}  ${[m.simulator, m.collector, m.storage].map((x) => fmt(x)).join(' ')}  ${r.failure === null ? 'ok' : `FAILED: ${r.failure}`}`,
        );
        for (const line of r.silentRanges) print(`  not in any recorded hole: ${line}`);
        if (r.failure !== null) process.exitCode = 1;
      }
    }
  }
  const cpu = (r: PipelineRun) => PROCESSES.reduce((n, p) => n + r.cpuPer1k[p], 0);
  const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'n/a');
  print('medians (failed runs excluded):');
  for (const rate of rates) {
    const byMode = new Map<Mode, PipelineRun[]>(MODES.map((m) => [m, all.filter((r) => r.rate === rate && r.mode === m && r.failure === null)]));
    const med = (m: Mode, f: (r: PipelineRun) => number) => {
      const xs = byMode.get(m)?.map(f) ?? [];
      return xs.length === 0 ? Number.NaN : median(xs);
    };
    for (const m of MODES) {
      print(`  ${m.padEnd(8)} ${rate.padStart(6)}: ${fmt(med(m, (r) => r.hotPerSecond))} trades/s in hot, p99 ${fmt(med(m, (r) => r.p99Ms))} ms, ${fmt(med(m, cpu), 3)} cpu s/1k trades (all), ${byMode.get(m)?.length ?? 0} of ${all.filter((r) => r.rate === rate && r.mode === m).length} runs ok`);
    }
    // The naive design loses trades once it falls behind: its rate into hot still counts for the
    // ratio (it is what it managed), said so, while failed batched runs stay out.
    const naiveRuns = all.filter((r) => r.rate === rate && r.mode === 'naive');
    const naiveHot = naiveRuns.length === 0 ? Number.NaN : median(naiveRuns.map((r) => r.hotPerSecond));
    const naiveLost = naiveRuns.filter((r) => r.failure !== null).length;
    print(
      `  batched / naive at ${rate}: ${x(med('batched', (r) => r.hotPerSecond) / naiveHot)} trades/s in hot${naiveLost > 0 ? ` (naive lost trades in ${naiveLost} of ${naiveRuns.length} runs)` : ''}; ${x(med('naive', cpu) / med('batched', cpu))} less CPU per trade, all processes`,
    );
  }
  // Sustained: the highest rate at which every run of the mode lost nothing and hot kept up (within
  // SUSTAINED_SHARE of what was sent). With several rates this is the speed-up that counts.
  const sustained = (m: Mode) =>
    Math.max(
      0,
      ...rates.map(Number).filter((rate) => {
        const runsAt = all.filter((r) => Number(r.rate) === rate && r.mode === m);
        return runsAt.length > 0 && runsAt.every((r) => r.failure === null && r.hotPerSecond >= SUSTAINED_SHARE * r.sentPerSecond);
      }),
    );
  for (const m of MODES) print(`  ${m.padEnd(8)} sustains ${sustained(m) > 0 ? `${sustained(m)} trades/s` : `none of the rates tried (${rates.join(', ')})`}`);
  if (MODES.length === 2 && sustained('naive') > 0) print(`  sustained rate, batched / naive: ${x(sustained('batched') / sustained('naive'))} (of the rates tried)`);
  return all;
}

/** The connections the simulated venues cut (a client too slow to answer a ping, say), for a failure's message. */
async function simulatorDrops(platform: BenchPlatform): Promise<string> {
  try {
    const text = await (await fetch(platform.simUrl('/metrics'))).text();
    const cuts = text
      .split('\n')
      .filter((l) => l.startsWith('mprism_simulator_clients_dropped_total{'))
      .map((l) => l.replace('mprism_simulator_clients_dropped_total', '').trim());
    return cuts.length === 0 ? '; the simulator cut no connection' : `; the simulator cut connections: ${cuts.join(', ')}`;
  } catch (err) {
    return `; simulator metrics unreadable: ${errorMessage(err)}`;
  }
}
