import { Counter, type Registry } from 'prom-client';
import { retentionProblems, runRetention } from '../checks/retention.js';
import type { ActionRunner, BrainDeps } from './actions.js';
import { BrainStore } from './history.js';
import { BackfillBusyError, withBackfillLock } from './history-init.js';
import { dryRunParam } from './task-params.js';

const DROPPED_METRIC = 'mprism_brain_retention_dropped_partitions_total';

/** One counter per registry: a second factory call (tests, a restarted daemon) reuses it. */
function droppedCounter(registry: Registry): Counter<'server' | 'table'> {
  const existing = registry.getSingleMetric(DROPPED_METRIC);
  if (existing !== undefined) return existing as Counter<'server' | 'table'>;
  return new Counter({
    name: DROPPED_METRIC,
    help: 'Partitions dropped by retention, by server (hot, cold) and table',
    labelNames: ['server', 'table'],
    registers: [registry],
  });
}

/**
 * The `retention` action: drops hot partitions past retention.hotDays whose every key is verified in
 * cold, and cold partitions past retention.coldDays, and prunes the brain's own history past
 * retention.brainHistoryDays. The result is a RetentionReport; problems are
 * failures, and partitions held past retention because cold lacks rows (`mprism repair` copies them).
 */
export function createRetentionAction(deps: BrainDeps): ActionRunner {
  const dropped = droppedCounter(deps.metrics);
  return async (ctx) => {
    const dryRun = dryRunParam(ctx.params);
    // Pruned first and whatever ClickHouse says: the brain's history must not grow while cold is down.
    const pruned = dryRun ? null : await new BrainStore(deps.pool).pruneHistory(ctx.config.retention.brainHistoryDays);
    try {
      // Under the backfills' lock: a backfill writes history into old day partitions, and a row
      // stored between retention's check of a partition and its drop would go with it.
      return await withBackfillLock(deps.pool, async () => {
        const report = await runRetention(ctx.config, { dryRun, signal: ctx.signal, onDropped: (d) => dropped.inc({ server: d.server, table: d.table }) });
        for (const d of report.dropped.filter((x) => x.done)) ctx.log.info({ server: d.server, table: d.table, partition: d.partition, rows: d.rows }, 'retention dropped a partition');
        return { result: { ...report, brainHistoryPruned: pruned, note: null }, problems: retentionProblems(report) };
      });
    } catch (err) {
      if (!(err instanceof BackfillBusyError)) throw err;
      ctx.log.info('a backfill is writing history: retention waits for its next run');
      return { result: { brainHistoryPruned: pruned, note: 'a backfill is writing history; partitions are left to the next run' }, problems: [] };
    }
  };
}
