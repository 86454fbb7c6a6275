import pino from 'pino';
import { removeEffectiveConfig, writeEffectiveConfig } from '../../lib/config/effective.js';
import { loadConfig } from '../../lib/config/load.js';
import { errorMessage } from '../../lib/errors.js';
import { homePaths } from '../../lib/paths.js';
import { serveControl } from '../../lib/supervisor/control.js';
import { acquireLock, homeLockHints } from '../../lib/supervisor/lock.js';
import { RotatingLog } from '../../lib/supervisor/rotating-log.js';
import { Supervisor } from '../../lib/supervisor/supervisor.js';
import { writeFileSync, unlinkSync } from 'node:fs';

/**
 * The supervisor process, spawned detached by `mprism start`. It owns the daemons' lifecycle and
 * answers the CLI on a unix socket; it exits after a shutdown request or SIGTERM (stopping its daemons first).
 */
const config = loadConfig();
const paths = homePaths(config.home);
const file = new RotatingLog(paths.logFile('supervisor'), config.logs.maxBytes, config.logs.keep);
const log = pino({ base: { component: 'supervisor', pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, { write: (s: string) => file.write(s) });

let lock;
try {
  lock = acquireLock(paths.lockFile('supervisor'), 'supervisor', process.pid, homeLockHints(config, 'supervisor'));
} catch (err) {
  log.fatal({ err: errorMessage(err) }, 'cannot take the supervisor lock');
  process.exit(1);
}
if (lock.replaced) log.warn({ reason: lock.replaced }, 'took over a stale supervisor lock');
writeFileSync(paths.pidFile('supervisor'), `${process.pid}\n`);
// Commands read it when mprism.yaml turns invalid while we run (see config/effective.ts).
writeEffectiveConfig(config);

const sup = new Supervisor(config, log);
sup.capServerLogs();
const finish = () => {
  server.close();
  try {
    unlinkSync(paths.pidFile('supervisor'));
  } catch {
    // already removed
  }
  removeEffectiveConfig(config.home);
  lock.release();
  log.info('supervisor exited');
  file.close();
  process.exit(0);
};
const server = await serveControl(paths.supervisorSocket, sup, finish);
log.info({ socket: paths.supervisorSocket }, 'supervisor ready');

let shuttingDown = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal: sig }, 'stopping all daemons');
    void sup.shutdown(10_000).then(finish);
  });
}
