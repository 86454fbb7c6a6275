import type { Daemon } from '../../lib/daemon-context.js';
import { startSimulator } from '../../lib/simulator/server.js';

/** Serves its own /health and /metrics beside the exchange routes: the runner opens no port for it. */
export const simulator: Daemon = async (ctx, config) => {
  const handle = await startSimulator({
    host: '127.0.0.1',
    port: config.simulator.port,
    symbols: config.simulator.symbols,
    tradesPerSecond: config.simulator.tradesPerSecond,
    seed: config.simulator.seed,
    slowClientBufferMiB: config.simulator.slowClientBufferMiB,
    replay: config.simulator.replay,
    metrics: ctx.metrics,
    log: ctx.log,
  });
  ctx.setHealth(() => handle.health());
  if (!ctx.signal.aborted) {
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  await handle.close();
  ctx.log.info('simulator stopped');
};
