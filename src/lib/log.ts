import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs to stdout. Daemons run under the supervisor, which points their stdout at
 * MPRISM_HOME/logs/<name>.log and keeps it size-capped (copy-truncate, see supervisor/rotating-log.ts).
 */
export function createLogger(component: string, level = process.env.MPRISM_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { component, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
