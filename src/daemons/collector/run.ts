import { join } from 'node:path';
import { connectNats } from '../../lib/bus/connection.js';
import { Publisher } from '../../lib/bus/publisher.js';
import type { Daemon } from '../../lib/daemon-context.js';
import { errorMessage } from '../../lib/errors.js';
import { adapterFor, enabledVenues, pollOptions, venueBaseUrls } from '../../lib/exchanges/registry.js';
import { createCollectorMetrics } from '../../lib/feeds/collector-metrics.js';
import { coverageFile, readCoverage, writeCoverage } from '../../lib/feeds/coverage.js';
import { VenueCollector } from '../../lib/feeds/venue-collector.js';
import { nextSnapshotRate, SNAPSHOT_PACING_INTERVAL_MS, snapshotRateLimits } from '../../lib/feeds/snapshot-pacing.js';
import { collectorOverload, EventLoopLag } from '../../lib/overload.js';

/**
 * How often the coverage file is rewritten. A kill -9 loses at most this much of the record of
 * what was covered: the next start then reports a hole that is up to this much too long, never
 * one too short (only acknowledged records advance it).
 */
const COVERAGE_WRITE_INTERVAL_MS = 1000;

/**
 * How long nats-server 2.9 may hold acknowledged messages before they reach the disk: a kill -9
 * of it lost 1.1 s of acknowledged trades, up to 6 s old (measured in the fault suite). Records
 * received this long before a lost connection are treated as possibly lost; repair refills them.
 */
const NATS_UNWRITTEN_MS = 60_000;
/** Records received this long after the connection is back are inside the hole too. */
const NATS_SETTLE_MS = 5000;

export const collector: Daemon = async (ctx, config) => {
  const nc = await connectNats(config, 'collector');
  const c = config.collector;
  const venues = enabledVenues(config);
  // Half of the buffer for the publish window, half shared by the venues' queues.
  const bufferBytes = c.publish.bufferMiB * 1024 * 1024;
  const publisher = new Publisher(nc, { metrics: ctx.metrics, component: 'collector', signal: ctx.signal, maxInFlightBytes: bufferBytes / 2 });
  const metrics = createCollectorMetrics(ctx.metrics);
  const coveragePath = coverageFile(config.home);
  const previous = readCoverage(coveragePath, Date.now());
  if (previous.problem !== null) {
    metrics.coverageErrors.inc({ problem: 'unreadable' });
    ctx.log.error({ problem: previous.problem }, 'coverage file unusable: holes from the downtime before this start cannot be bounded; run mprism integrity');
  }
  const collectors = venues.map((venue) => {
    const urls = venueBaseUrls(config, venue, ctx.simulate);
    return new VenueCollector({
      adapter: adapterFor(venue, c.venues[venue].symbols),
      wsBaseUrl: urls.ws,
      restBaseUrl: urls.rest,
      symbols: c.venues[venue].symbols,
      dataTypes: c.venues[venue].dataTypes,
      sink: publisher,
      metrics,
      log: ctx.log.child({ venue }),
      staleAfterMs: c.staleAfterSeconds * 1000,
      reconnect: { initialMs: c.reconnect.initialDelayMs, maxMs: c.reconnect.maxDelayMs },
      startupGraceMs: c.startupGraceSeconds * 1000,
      orderbook: c.orderbook,
      polls: pollOptions(config),
      capture: c.capture.enabled ? { dir: c.capture.dir ?? join(config.home, 'capture'), maxFileBytes: c.capture.maxFileBytes } : null,
      resume: previous.streams.filter((s) => s.identity.venue === venue),
      maxRecordsPerMessage: c.publish.maxRecordsPerMessage,
      maxQueuedBytes: Math.max(1024 * 1024, bufferBytes / 2 / Math.max(1, venues.length)),
    });
  });

  // Book snapshots thinned evenly while the collector cannot keep up, restored once it can.
  const snapshotLimits = snapshotRateLimits(c.orderbook);
  let snapshotRate = snapshotLimits.max;
  metrics.bookSnapshotRate.set(snapshotRate);
  // p90, not p99: one GC pause in a second is not overload, a loop behind most of the second is.
  const pacingLag = new EventLoopLag(SNAPSHOT_PACING_INTERVAL_MS, 90);
  const pacingTimer = setInterval(() => {
    const load = { eventLoopLagMs: pacingLag.delayMs(), publishBackedUp: collectors.some((vc) => vc.publishBackedUp) };
    const next = nextSnapshotRate(snapshotRate, load, snapshotLimits);
    if (next === snapshotRate) return;
    if (snapshotRate === snapshotLimits.max) {
      const cause = load.publishBackedUp ? 'records wait for JetStream' : `event loop ${Math.round(load.eventLoopLagMs)} ms behind`;
      ctx.log.warn({ cause, snapshotsPerSecond: next }, 'thinning book snapshots until the collector keeps up');
    }
    if (next === snapshotLimits.max) ctx.log.info({ snapshotsPerSecond: next }, 'book snapshots back at their configured rate');
    snapshotRate = next;
    metrics.bookSnapshotRate.set(next);
    for (const vc of collectors) vc.setBookSnapshotRate(next);
  }, SNAPSHOT_PACING_INTERVAL_MS);

  // `ok` is about what the supervisor can fix by restarting us (NATS connectivity); a stale stream is
  // reported for `mprism health`, but restarting the collector would not make a venue send.
  const lag = new EventLoopLag();
  ctx.setHealth(() => {
    const venueHealth = collectors.map((vc) => vc.health());
    const eventLoopLagMs = lag.delayMs();
    return {
      ok: publisher.connection.connected && !nc.isClosed(),
      nats: publisher.connection.connected ? 'connected' : 'disconnected',
      // Overload is for `mprism health`, not the supervisor: a restart would not add a core.
      overloaded: collectorOverload({ eventLoopLagMs, publishBackedUp: collectors.some((vc) => vc.publishBackedUp) }),
      eventLoopLagMs,
      bookSnapshotsPerSecond: snapshotRate,
      publishPending: publisher.pending,
      streams: venueHealth.flatMap((h) => h.streams),
      books: venueHealth.flatMap((h) => h.books),
      connections: venueHealth.flatMap((h) => h.connections),
    };
  });
  ctx.log.info({ venues, simulate: ctx.simulate }, 'collector started');

  // The holes are recorded once the connection is back (and has settled), so they span the
  // outage too: records published across a server restart were seen lost as well (fault suite).
  let lostAt: number | null = null;
  publisher.connection.onLost((at) => {
    lostAt ??= at;
  });
  publisher.connection.onBack(() => {
    const since = lostAt === null ? null : lostAt - NATS_UNWRITTEN_MS;
    lostAt = null;
    if (since === null) return;
    setTimeout(() => {
      // Our own drain at shutdown closes the connection too; nothing is lost then.
      if (ctx.signal.aborted) return;
      ctx.log.warn({ since: new Date(since).toISOString() }, 'NATS connection was lost: records it acknowledged around the outage may be gone; recording them as holes');
      for (const vc of collectors) vc.busLost(since, 'NATS connection lost; the server may not have written what it acknowledged around it');
    }, NATS_SETTLE_MS).unref();
  });

  // Streams of venues no longer enabled keep their entries, so re-enabling one finds its hole.
  const keptStreams = previous.streams.filter((s) => !venues.includes(s.identity.venue));
  const saveCoverage = () => {
    try {
      writeCoverage(coveragePath, [...keptStreams, ...collectors.flatMap((vc) => vc.coverageState())], Date.now());
    } catch (err) {
      metrics.coverageErrors.inc({ problem: 'write_failed' });
      ctx.log.error({ err: errorMessage(err), file: coveragePath }, 'coverage file not written');
    }
  };
  const coverageTimer = setInterval(saveCoverage, COVERAGE_WRITE_INTERVAL_MS);
  try {
    await Promise.all(collectors.map((vc) => vc.run(ctx.signal)));
    await publisher.flush();
  } finally {
    clearInterval(coverageTimer);
    clearInterval(pacingTimer);
    lag.stop();
    pacingLag.stop();
    saveCoverage();
  }
  if (publisher.lastError !== null) {
    ctx.log.error({ err: errorMessage(publisher.lastError) }, 'records given up at shutdown (see mprism_collector_publish_lost_total)');
  }
  await nc.drain();
  ctx.log.info('collector stopped');
};
