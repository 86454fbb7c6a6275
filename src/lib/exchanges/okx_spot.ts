import { ConfigError } from '../errors.js';
import { OKX_SPOT_MARKET, okxAdapter } from './okx.js';
import type { VenueAdapter } from './types.js';

/** OKX spot (instIds like BTC-USDT): books and trades over the public WebSocket, nothing to poll; trades refill from REST history. */
export const okxSpot: VenueAdapter = okxAdapter({
  market: OKX_SPOT_MARKET,
  wsDataTypes: ['orderbook', 'trade'],
  polledDataTypes: [],
  polls(_restBaseUrl, _instIds, dataTypes) {
    const [first] = dataTypes;
    if (first !== undefined) throw new ConfigError(`collector.venues.okx_spot.dataTypes: ${first} is not polled for okx_spot`);
    return [];
  },
  liquidationInstIds: new Set(),
  // Trades' history only: spot has nothing polled.
  polledHistory: {},
});
