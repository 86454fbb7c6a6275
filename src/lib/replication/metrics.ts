import { Counter, Gauge, type Registry } from 'prom-client';

export type WindowResult = 'verified' | 'short' | 'excess';
/** `late`: a window behind the watermark that got rows after it was copied, copied again. */
export type WindowMetricResult = WindowResult | 'late';

export interface ReplicationMetrics {
  windows: Counter<'table' | 'result'>; // result: WindowMetricResult
  rowsCopied: Counter<'table'>;
  errors: Counter<'table'>;
  lag: Gauge<'table'>;
}

/** Lag is computed at scrape time from the watermarks, so it keeps growing while replication is stuck. */
export function createReplicationMetrics(registry: Registry, lagSeconds: () => ReadonlyMap<string, number>): ReplicationMetrics {
  const registers = [registry];
  return {
    windows: new Counter({
      name: 'mprism_replication_windows_total',
      help: 'Replication windows processed, by table and result (verified, short, excess, late)',
      labelNames: ['table', 'result'],
      registers,
    }),
    rowsCopied: new Counter({
      name: 'mprism_replication_rows_copied_total',
      help: 'Rows inserted into cold by replication',
      labelNames: ['table'],
      registers,
    }),
    errors: new Counter({
      name: 'mprism_replication_errors_total',
      help: 'Failed replication attempts (queries that threw); table="schema" for failures preparing the schema',
      labelNames: ['table'],
      registers,
    }),
    lag: new Gauge({
      name: 'mprism_replication_lag_seconds',
      help: 'Seconds between now and the table watermark (end of the last verified window)',
      labelNames: ['table'],
      registers,
      collect() {
        this.reset();
        for (const [table, seconds] of lagSeconds()) this.set({ table }, seconds);
      },
    }),
  };
}
