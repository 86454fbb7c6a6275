import pino from 'pino';
import { Registry } from 'prom-client';
import type { Config } from '../../src/lib/config/schema.js';
import type { Daemon, DaemonContext, HealthReport } from '../../src/lib/daemon-context.js';

/** A daemon function running in this process, as the daemon runner would run it, minus the HTTP port. */
export interface RunningDaemon {
  ctx: DaemonContext;
  controller: AbortController;
  done: Promise<void>;
  /** What the daemon's /health would answer; not ok until the daemon sets its provider, like the runner's 503. */
  health: () => Promise<HealthReport>;
}

export function runDaemon(daemon: Daemon, config: Config): RunningDaemon {
  const controller = new AbortController();
  let provider: () => HealthReport | Promise<HealthReport> = () => ({ ok: false });
  const ctx: DaemonContext = {
    signal: controller.signal,
    // MPRISM_TEST_LOG=debug shows the daemons' logs on stderr when a test needs explaining.
    log: pino({ level: process.env.MPRISM_TEST_LOG ?? 'silent' }, pino.destination(2)),
    metrics: new Registry(),
    setHealth: (p) => (provider = p),
    simulate: true,
  };
  return { ctx, controller, done: daemon(ctx, config), health: async () => provider() };
}

/** Aborts the daemon and waits until it has wound down. */
export async function stopDaemon(d: RunningDaemon): Promise<void> {
  d.controller.abort();
  await d.done;
}
