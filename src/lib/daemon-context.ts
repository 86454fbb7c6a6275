import type { Registry } from 'prom-client';
import type { Logger } from './log.js';
import type { Config } from './config/schema.js';

/** What a daemon reports on GET /health: `ok` false gives HTTP 503. */
export interface HealthReport {
  ok: boolean;
  [detail: string]: unknown;
}

export interface DaemonContext {
  /** Aborted on SIGTERM/SIGINT: finish in-flight work, flush, and return. */
  signal: AbortSignal;
  log: Logger;
  /** Per-daemon registry, served on GET /metrics. */
  metrics: Registry;
  /** Set the provider behind GET /health; until a daemon calls it, /health answers 503 (initializing). */
  setHealth(provider: () => HealthReport | Promise<HealthReport>): void;
  /** True when started by `mprism start --simulate`: exchange URLs point at the local simulator. */
  simulate: boolean;
}

/** A daemon: resolves when it has shut down cleanly after ctx.signal aborted. */
export type Daemon = (ctx: DaemonContext, config: Config) => Promise<void>;
