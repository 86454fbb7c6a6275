import { sleep } from '../lib/backoff.js';
import { repairHoles } from '../lib/checks/hole-repair.js';
import { fetchDaemonHealth } from '../lib/daemon-health.js';
import { BenchPlatform, peakRssMiB, rssMiB, tradeAndBookVenues, VENUE_SYMBOLS, type StreamSent } from './platform.js';
import { median } from './stats.js';

/**
 * A NATS outage under load, end to end: the simulator streams trades and books of 3 symbols on 4
 * venues to the real collector and storage daemons; nats-server is killed and left down for
 * MPRISM_BENCH_OUTAGE_SECONDS (default 120), then started again. Reports the collector's memory
 * through the outage (to be read: it should level off once its buffer, collector.publish.bufferMiB,
 * is full, not grow with the outage), and then holds hot against the simulator's ground truth (this
 * decides whether the run failed): every trade missing after
 * the outage must lie in a hole the collector recorded (a hole nothing reports fails the run), and
 * after one repair nothing may be missing or duplicated. The replication daemon copies hot to a cold
 * server meanwhile: `mprism integrity` must exit 1 before the repair and 0 after it (once replication
 * has copied the refilled windows), and cold must then hold every trade sent, once. The simulated venues drop a client that
 * leaves 16 MiB unread, as the real ones do, so a paused collector loses its connections.
 * MPRISM_BENCH_RATE: total trades/s (default 500: what goes missing is refilled from the venues' history
 * within their rate limits, OKX 100 trades a page, and a higher rate makes the repair take long).
 */

const SYMBOLS = ['BTC', 'ETH', 'SOL'];
const STREAMS = Object.keys(VENUE_SYMBOLS).length * SYMBOLS.length;
const WARMUP_TIMEOUT_MS = 60_000;
const SETTLE_MS = 5000;
const SAMPLE_MS = 1000;
const PRINT_EVERY_MS = 15_000;
/** After the restart: this long with the platform flowing again before the simulator is paused. */
const RECOVERY_MS = 30_000;
/** Drained once hot has not changed for this long. */
const DRAIN_IDLE_MS = 15_000;
/** After the recovery, how long every trade stream has to catch up with the simulator (or be known broken). */
const CATCH_UP_TIMEOUT_MS = 120_000;
const REPAIR_VERIFY_TIMEOUT_MS = 120_000;
/** After the repair, how long replication has to copy the refilled windows to cold before integrity must say ok. */
const INTEGRITY_TIMEOUT_MS = 180_000;

export interface OutageFigures {
  baselineRssMiB: number;
  peakRssMiB: number;
  rssAtEndMiB: number;
  secondHalfGrowthMiB: number;
  missingBeforeRepair: number;
  silentlyMissing: number;
  tradeHoles: number;
  missingAfterRepair: number;
  duplicates: number;
  failure: string | null;
}

export async function runOutageBench(print: (line: string) => void): Promise<OutageFigures> {
  const outageSeconds = Number(process.env.MPRISM_BENCH_OUTAGE_SECONDS ?? 120);
  const rate = Number(process.env.MPRISM_BENCH_RATE ?? 500);
  if (!(outageSeconds > 0)) throw new Error(`MPRISM_BENCH_OUTAGE_SECONDS: ${process.env.MPRISM_BENCH_OUTAGE_SECONDS} is not a positive number of seconds`);
  if (!(rate > 0)) throw new Error(`MPRISM_BENCH_RATE: ${process.env.MPRISM_BENCH_RATE} is not a positive number of trades/s`);
  const venues = tradeAndBookVenues(SYMBOLS);
  // USD-M trade history needs a key (any key, for the simulator); without one those holes stay unrepairable.
  venues.binance_derivatives = { ...(venues.binance_derivatives as (typeof venues)[string]), apiKey: 'simulated-key' };
  const platform = await BenchPlatform.start({
    settings: () => ({
      simulator: { tradesPerSecond: Math.max(1, Math.round(rate / STREAMS)), symbols: SYMBOLS.map((b) => `${b}USDT`) },
      collector: { venues },
    }),
    cold: true,
  });
  try {
    const { config } = platform;
    const startedAt = Date.now();
    platform.spawn('simulator');
    platform.spawn('storage');
    platform.spawn('replication');
    await platform.waitForSimulator();
    platform.spawn('collector');
    const collectorPid = platform.pids().get('collector') ?? -1;
    await platform.waitForTradesFlowing(STREAMS, WARMUP_TIMEOUT_MS);
    await sleep(SETTLE_MS);
    const baselineRss = rssMiB(collectorPid);
    print(`${STREAMS} trade streams and books at ${rate} trades/s; collector buffer ${config.collector.publish.bufferMiB} MiB; collector RSS before the outage ${baselineRss.toFixed(0)} MiB`);

    await platform.killServer('nats');
    print(`nats-server killed; down for ${outageSeconds} s`);
    print(`${'t s'.padStart(5)} ${'RSS MiB'.padStart(8)} ${'in flight'.padStart(9)}  overloaded`);
    const samples: { t: number; rss: number }[] = [];
    const outageStart = Date.now();
    let lastPrint = -Infinity;
    while (Date.now() - outageStart < outageSeconds * 1000) {
      await sleep(SAMPLE_MS);
      platform.checkAlive();
      const t = (Date.now() - outageStart) / 1000;
      const rss = rssMiB(collectorPid);
      samples.push({ t, rss });
      if (Date.now() - lastPrint >= PRINT_EVERY_MS) {
        lastPrint = Date.now();
        const health = await fetchDaemonHealth(platform.ports.collector, 5000);
        const body = (health.answered ? health.body : {}) as { publishPending?: number; overloaded?: string | null };
        print(`${t.toFixed(0).padStart(5)} ${rss.toFixed(0).padStart(8)} ${String(body.publishPending ?? '?').padStart(9)}  ${body.overloaded ?? '-'}`);
      }
    }
    const rssAtEnd = rssMiB(collectorPid);
    // The process's peak so far: before the outage it was at baselineRss.
    const peakRss = peakRssMiB(collectorPid);
    const half = samples.filter((x) => x.t >= outageSeconds / 2);
    const secondHalfGrowth = half.length === 0 ? 0 : Math.max(...half.map((x) => x.rss)) - (half[0]?.rss ?? 0);

    await platform.startServer('nats');
    const backAt = Date.now();
    print(`nats-server started again; ${RECOVERY_MS / 1000} s of recovery, then the simulator is paused and hot drained`);
    // When each trade stream had stored a trade from after nats-server's return: its backlog behind it.
    const liveAfterMs = new Map<string, number>();
    while (Date.now() - backAt < RECOVERY_MS) {
      await sleep(500);
      for (const [stream, c] of platform.tradeCoverage()) if (!liveAfterMs.has(stream) && (c.last?.eventTime ?? 0) >= backAt) liveAfterMs.set(stream, Date.now() - backAt);
    }
    const slowest = [...liveAfterMs].sort((a, b) => b[1] - a[1])[0];
    print(
      `  trade streams storing live trades again after nats-server's return: ${liveAfterMs.size} of ${STREAMS}` +
        (slowest === undefined ? '' : `, median ${(median([...liveAfterMs.values()]) / 1000).toFixed(1)} s, slowest ${(slowest[1] / 1000).toFixed(1)} s (${slowest[0]})`),
    );
    const { sent, behind, resumes } = await platform.pauseCaughtUp(CATCH_UP_TIMEOUT_MS);
    if (resumes > 0) print(`  the simulator ran on ${resumes} time(s) for the next trades to close the breaks the collector had open`);
    for (const s of behind) print(`  after ${CATCH_UP_TIMEOUT_MS / 1000} s: ${s}`);
    let last = -1;
    let lastChange = Date.now();
    while (Date.now() - lastChange < DRAIN_IDLE_MS) {
      const n = await platform.count('trades');
      if (n !== last) {
        last = n;
        lastChange = Date.now();
      }
      await sleep(500);
    }

    const before = await platform.compareWithSent(sent);
    const { holes, silentlyMissing, silentRanges } = await platform.missingOutsideHoles(sent);
    for (const line of silentRanges.slice(0, 20)) print(`  not in any recorded hole: ${line}`);
    if (silentRanges.length > 0) {
      // What the collector itself says of those streams (a break it has not closed yet is in its coverage, not in stream_holes).
      const health = await fetchDaemonHealth(platform.ports.collector, 5000);
      if (health.answered) for (const c of (health.body as { connections?: unknown[] }).connections ?? []) print(`  collector connection: ${JSON.stringify(c)}`);
    }
    print(`after the outage: ${before.missing} trades missing, ${before.duplicates} duplicated; ${holes} trade holes recorded; ${silentlyMissing} missing outside every recorded hole`);
    // The venues trade on (the comparisons look only at the ids sent until the pause): a platform
    // whose streams stopped would fail integrity for that, not for the holes.
    await fetch(platform.simUrl('/control/resume'), { method: 'POST' });

    // What an operator's cron sees: `mprism integrity` must fail, naming the holes.
    const since = `${Math.ceil((Date.now() - startedAt) / 60_000) + 5}m`;
    const integrityBefore = await platform.integrity(since);
    print(`mprism integrity --since ${since} before the repair: exit ${integrityBefore.status}; ${integrityBefore.problems.length} problems${integrityBefore.problems.length > 0 ? `, e.g. ${integrityBefore.problems[0]}` : ''}`);

    print('repairing (paced by the venues\' history rate limits: OKX pages 100 trades at a time)');
    const repairStart = Date.now();
    const elapsed = () => `${((Date.now() - repairStart) / 1000).toFixed(0).padStart(4)} s`;
    const actions = await repairHoles(config, { dryRun: false, sinceMs: Date.now() - startedAt + 60_000, simulate: true, verifyTimeoutMs: REPAIR_VERIFY_TIMEOUT_MS, progress: (line) => {
        // Each hole's outcome; not every page of it.
        if (!line.endsWith('records refilled')) print(`  ${elapsed()}  ${line}`);
      },
    });
    const after = await platform.compareWithSent(sent);
    print(`after one repair (${actions.length} holes handled in ${elapsed().trim()}): ${after.missing} trades missing, ${after.duplicates} duplicated`);

    // Replication copies the refilled windows to cold (its late-data check); integrity then says ok
    // (a window whose refilled rows are not copied yet is pending to it, so cold is awaited too).
    const integrityDeadline = Date.now() + INTEGRITY_TIMEOUT_MS;
    let integrityAfter = await platform.integrity(since);
    let cold = await platform.compareWithSent(sent, 'cold');
    while ((integrityAfter.status !== 0 || cold.missing > 0) && Date.now() < integrityDeadline) {
      await sleep(10_000);
      platform.checkAlive();
      integrityAfter = await platform.integrity(since);
      cold = await platform.compareWithSent(sent, 'cold');
    }
    print(`mprism integrity after the repair: exit ${integrityAfter.status}${integrityAfter.problems.length > 0 ? `; ${integrityAfter.problems.slice(0, 5).join('; ')}` : ''}`);
    print(`cold against the simulator: ${cold.missing} trades missing, ${cold.duplicates} duplicated`);

    const failures: string[] = [];
    if (behind.length > 0) failures.push(`${behind.length} trade streams not caught up, or with a break no trade closed, ${CATCH_UP_TIMEOUT_MS / 1000} s after the recovery`);
    if (silentlyMissing > 0) failures.push(`${silentlyMissing} trades missing that no recorded hole covers`);
    if (after.missing > 0 || after.duplicates > 0 || before.duplicates > 0) failures.push(`${after.missing} missing and ${Math.max(before.duplicates, after.duplicates)} duplicated after repair`);
    if (before.missing > 0 && integrityBefore.status !== 1) failures.push(`mprism integrity exited ${integrityBefore.status} with ${before.missing} trades missing (1 expected)`);
    if (integrityAfter.status !== 0) failures.push(`mprism integrity exited ${integrityAfter.status} ${INTEGRITY_TIMEOUT_MS / 1000} s after the repair`);
    if (cold.missing > 0 || cold.duplicates > 0) failures.push(`cold: ${cold.missing} missing and ${cold.duplicates} duplicated`);
    const figures: OutageFigures = {
      baselineRssMiB: baselineRss,
      peakRssMiB: peakRss,
      rssAtEndMiB: rssAtEnd,
      secondHalfGrowthMiB: secondHalfGrowth,
      missingBeforeRepair: before.missing,
      silentlyMissing,
      tradeHoles: holes,
      missingAfterRepair: after.missing,
      duplicates: Math.max(before.duplicates, after.duplicates),
      failure: failures.length === 0 ? null : failures.join('; '),
    };
    print(
      `collector RSS: ${baselineRss.toFixed(0)} MiB before, peak ${peakRss.toFixed(0)} MiB, ${rssAtEnd.toFixed(0)} MiB at the end of the outage (grew ${secondHalfGrowth.toFixed(0)} MiB over its second half)`,
    );
    print(figures.failure === null ? 'result: ok' : `result: FAILED: ${figures.failure}`);
    if (figures.failure !== null) process.exitCode = 1;
    return figures;
  } finally {
    await platform.stop();
  }
}
