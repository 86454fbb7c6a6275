import { POLLED_DATA_TYPES, type Config, type DataType, type Venue } from '../config/schema.js';
import { binanceDerivatives } from './binance_derivatives.js';
import { binanceSpot } from './binance_spot.js';
import { deribitDerivatives } from './deribit_derivatives.js';
import { okxDerivatives } from './okx_derivatives.js';
import { okxSpot } from './okx_spot.js';
import type { PollOptions, VenueAdapter } from './types.js';

/**
 * Every venue the config can enable must have an adapter (a missing one is a type error), built for
 * the configured symbols (OKX liquidations arrive for the whole market and are filtered by them).
 */
const ADAPTERS: { readonly [V in Venue]: (symbols: readonly string[]) => VenueAdapter } = {
  binance_spot: () => binanceSpot,
  binance_derivatives: () => binanceDerivatives,
  okx_spot: () => okxSpot,
  okx_derivatives: okxDerivatives,
  deribit_derivatives: () => deribitDerivatives,
};

export function adapterFor(venue: Venue, symbols: readonly string[]): VenueAdapter {
  return ADAPTERS[venue](symbols);
}

/** Enabled venues, in the order the collector starts them. */
export function enabledVenues(config: Config): Venue[] {
  return (Object.keys(ADAPTERS) as Venue[]).filter((venue) => config.collector.venues[venue].enabled);
}

/** One configured stream: what the collector is meant to receive. */
export interface ConfiguredStream {
  venue: Venue;
  dataType: DataType;
  /** The instrument id its records carry. */
  instrument: string;
}

/** Every venue x data type x instrument the config asks the collector for. */
export function configuredStreams(config: Config): ConfiguredStream[] {
  return enabledVenues(config).flatMap((venue) => {
    const v = config.collector.venues[venue];
    const adapter = adapterFor(venue, v.symbols);
    const instruments = [...new Set(v.symbols.map((s) => adapter.instrumentOf(s)))];
    return v.dataTypes.flatMap((dataType) => instruments.map((instrument) => ({ venue, dataType, instrument })));
  });
}

/** A venue's WebSocket and REST bases: the configured hosts, or in simulate mode the local simulator's route for the venue. */
export function venueBaseUrls(config: Config, venue: Venue, simulate: boolean): { ws: string; rest: string } {
  if (simulate) {
    const hostPort = `127.0.0.1:${config.simulator.port}`;
    return { ws: `ws://${hostPort}/${venue}`, rest: `http://${hostPort}/${venue}` };
  }
  const v = config.collector.venues[venue];
  return { ws: v.wsUrl, rest: v.restUrl };
}

export function pollOptions(config: Config): PollOptions {
  const seconds = config.collector.pollIntervalSeconds;
  const intervalMs = Object.fromEntries(POLLED_DATA_TYPES.map((t) => [t, seconds[t] * 1000])) as PollOptions['intervalMs'];
  return { intervalMs, lsrPeriod: config.collector.lsrPeriod };
}
