import { Counter, Gauge, type Registry } from 'prom-client';

export interface CollectorMetrics {
  messages: Counter<'venue' | 'data_type'>;
  errors: Counter<'venue' | 'data_type' | 'code'>;
  lastSuccess: Gauge<'venue' | 'data_type'>;
  instrumentLastSuccess: Gauge<'venue' | 'data_type' | 'instrument'>;
  reconnects: Counter<'venue'>;
  resyncs: Counter<'venue' | 'symbol' | 'reason'>;
  restRequests: Counter<'venue' | 'outcome'>;
  restWaitSeconds: Counter<'venue'>;
  restRateLimited: Counter<'venue' | 'status'>;
  holes: Counter<'venue' | 'data_type' | 'cause'>;
  coverageErrors: Counter<'problem'>;
  bookSnapshotRate: Gauge;
}

export function createCollectorMetrics(registry: Registry): CollectorMetrics {
  const registers = [registry];
  return {
    messages: new Counter({
      name: 'mprism_collector_messages_total',
      help: 'Records and orderbook messages normalized from venue frames and REST bodies',
      labelNames: ['venue', 'data_type'],
      registers,
    }),
    errors: new Counter({
      name: 'mprism_collector_errors_total',
      help: 'Bad frames, failed REST calls and orderbook gaps, by code',
      labelNames: ['venue', 'data_type', 'code'],
      registers,
    }),
    lastSuccess: new Gauge({
      name: 'mprism_collector_last_success_timestamp_seconds',
      help: 'Receive time of the newest record (orderbook: newest valid book), epoch seconds',
      labelNames: ['venue', 'data_type'],
      registers,
    }),
    instrumentLastSuccess: new Gauge({
      name: 'mprism_collector_instrument_last_success_timestamp_seconds',
      help: 'Receive time of the newest record per instrument (orderbook: newest valid book), epoch seconds',
      labelNames: ['venue', 'data_type', 'instrument'],
      registers,
    }),
    reconnects: new Counter({ name: 'mprism_collector_reconnects_total', help: 'WebSocket connections lost or replaced', labelNames: ['venue'], registers }),
    resyncs: new Counter({ name: 'mprism_collector_orderbook_resyncs_total', help: 'Orderbooks resynced, by reason', labelNames: ['venue', 'symbol', 'reason'], registers }),
    restRequests: new Counter({
      name: 'mprism_collector_rest_requests_total',
      help: 'REST requests by outcome (HTTP status, network, timeout)',
      labelNames: ['venue', 'outcome'],
      registers,
    }),
    restWaitSeconds: new Counter({
      name: 'mprism_collector_rest_wait_seconds_total',
      help: 'Time REST requests were held back for rate budget or Retry-After',
      labelNames: ['venue'],
      registers,
    }),
    restRateLimited: new Counter({
      name: 'mprism_collector_rest_rate_limited_total',
      help: 'REST answers that rate-limited the venue (429, Binance 418)',
      labelNames: ['venue', 'status'],
      registers,
    }),
    holes: new Counter({
      name: 'mprism_collector_holes_total',
      help: 'Holes found in streams (intervals not received), by cause; each is recorded in stream_holes',
      labelNames: ['venue', 'data_type', 'cause'],
      registers,
    }),
    coverageErrors: new Counter({
      name: 'mprism_collector_coverage_errors_total',
      help: 'Coverage file problems: unreadable or corrupt at start (the downtime before could not be bounded), or failed writes',
      labelNames: ['problem'],
      registers,
    }),
    bookSnapshotRate: new Gauge({
      name: 'mprism_collector_book_snapshot_rate',
      help: 'Orderbook snapshots each book may publish per second now: the configured maximum, less while the collector is overloaded (not below the configured minimum)',
      registers,
    }),
  };
}
