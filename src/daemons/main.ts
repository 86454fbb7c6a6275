import type { Daemon } from '../lib/daemon-context.js';
import { runDaemon } from '../lib/daemon-runner.js';
import { DAEMON_NAMES, daemonKind, type DaemonKind, type DaemonName } from '../lib/paths.js';

/** Entry point the supervisor spawns: `node dist/daemons/main.js <name>` (storage-2... run the storage daemon). */
const loaders: Record<DaemonKind, () => Promise<Daemon>> = {
  simulator: async () => (await import('./simulator/run.js')).simulator,
  storage: async () => (await import('./storage/run.js')).storage,
  replication: async () => (await import('./replication/run.js')).replication,
  collector: async () => (await import('./collector/run.js')).collector,
  brain: async () => (await import('./brain/run.js')).brain,
};

const name = process.argv[2] as DaemonName;
if (!DAEMON_NAMES.includes(name)) {
  process.stderr.write(`usage: main.js <${DAEMON_NAMES.join('|')}>\n`);
  process.exit(2);
}
process.exitCode = await runDaemon(name, await loaders[daemonKind(name)]());
