import type { JobOutcome } from './actions.js';
import type { IntegrityReport } from '../checks/integrity.js';
import type { RepairReport } from '../checks/repair.js';


/** Adapt an integrity report to a job outcome: each table problem becomes one alertable line. */
export function integrityOutcome(report: IntegrityReport): JobOutcome {
  const problems = [...report.tables.flatMap((t) => t.problems.map((p) => `${t.table}: ${p}`)), ...report.problems];
  // A report can be not-ok without per-table lines (e.g. a check-level failure); it must still alert.
  if (!report.ok && problems.length === 0) problems.push('integrity check reported not ok');
  return { result: report, problems };
}

/** Adapt a repair report to a job outcome: what it could not do are the problems. */
export function repairOutcome(report: RepairReport): JobOutcome {
  const problems = [...report.errors];
  if (!report.ok && problems.length === 0) problems.push('repair incomplete');
  return { result: report, problems };
}
