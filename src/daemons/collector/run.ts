import { connectNats } from '../../lib/bus/connection.js';
import { Publisher } from '../../lib/bus/publisher.js';
import type { Config } from '../../lib/config/schema.js';
import type { Daemon } from '../../lib/daemon-context.js';
import { errorMessage } from '../../lib/errors.js';
import { binanceSpot } from '../../lib/exchanges/binance_spot.js';
import type { VenueAdapter } from '../../lib/exchanges/types.js';
import { VenueCollector, createCollectorMetrics } from '../../lib/feeds/venue-collector.js';

type CollectorVenues = Config['collector']['venues'];

/** Every venue the config can enable must have an adapter: a missing one is a type error. */
const ADAPTERS: { readonly [V in keyof CollectorVenues]: VenueAdapter } = { binance_spot: binanceSpot };

/** In simulate mode every venue is served by the local simulator on loopback. */
function baseUrl(config: Config, venue: keyof CollectorVenues, simulate: boolean): string {
  return simulate ? `ws://127.0.0.1:${config.simulator.port}` : config.collector.venues[venue].wsUrl;
}

export const collector: Daemon = async (ctx, config) => {
  const nc = await connectNats(config, 'collector');
  const publisher = new Publisher(nc, { metrics: ctx.metrics, component: 'collector', signal: ctx.signal });
  const metrics = createCollectorMetrics(ctx.metrics);
  const venues = Object.keys(ADAPTERS) as (keyof CollectorVenues)[];
  const collectors = venues
    .filter((venue) => config.collector.venues[venue].enabled)
    .map((venue) => {
      const venueConfig = config.collector.venues[venue];
      return new VenueCollector({
        adapter: ADAPTERS[venue],
        baseUrl: baseUrl(config, venue, ctx.simulate),
        symbols: venueConfig.symbols,
        dataTypes: venueConfig.dataTypes,
        sink: publisher,
        metrics,
        log: ctx.log.child({ venue }),
        staleAfterMs: config.collector.staleAfterSeconds * 1000,
        reconnect: { initialMs: config.collector.reconnect.initialDelayMs, maxMs: config.collector.reconnect.maxDelayMs },
      });
    });

  ctx.setHealth(() => ({
    ok: publisher.connection.connected && !nc.isClosed(),
    nats: publisher.connection.connected ? 'connected' : 'disconnected',
    publishPending: publisher.pending,
    streams: collectors.flatMap((c) => c.health()),
  }));
  ctx.log.info({ venues: collectors.length, simulate: ctx.simulate }, 'collector started');

  await Promise.all(collectors.map((c) => c.run(ctx.signal)));
  await publisher.flush();
  if (publisher.lastError !== null) {
    ctx.log.error({ err: errorMessage(publisher.lastError) }, 'records given up at shutdown (see mprism_collector_publish_lost_total)');
  }
  await nc.drain();
  ctx.log.info('collector stopped');
};
