import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { DAEMON_NAMES, homePaths, resolveHome } from '../paths.js';
import { processStartTime, writeFileAtomic } from '../process-util.js';
import { inspectLock } from '../supervisor/lock.js';
import { deepFreeze, loadConfig, type LoadOptions } from './load.js';
import { configSchema, type Config, type ConfigShape } from './schema.js';

/**
 * The configuration a supervisor validated when it started, kept in run/ for as long as it runs:
 * with mprism.yaml broken meanwhile, `status`, `health`, `stop` and `diagnose` still see and stop
 * the platform with the settings it really runs with, and the daemons it restarts still start.
 */
interface EffectiveConfigRecord {
  supervisorPid: number;
  /** With the pid, tells this supervisor from a later process that reused its pid. */
  supervisorStartTime: string | null;
  writtenAt: string;
  file: string | null;
  config: ConfigShape;
}

export const effectiveConfigFile = (home: string): string => join(homePaths(home).run, 'effective-config.json');

/** Written by the supervisor at start; 0600 because the config holds passwords. */
export function writeEffectiveConfig(config: Config, pid = process.pid): void {
  const { home: _home, file, ...shape } = config;
  const record: EffectiveConfigRecord = { supervisorPid: pid, supervisorStartTime: processStartTime(pid), writtenAt: new Date().toISOString(), file, config: shape };
  writeFileAtomic(effectiveConfigFile(config.home), JSON.stringify(record), 0o600);
}

export function removeEffectiveConfig(home: string): void {
  rmSync(effectiveConfigFile(home), { force: true });
}

export interface EffectiveConfig {
  config: Config;
  supervisorPid: number;
  writtenAt: string;
}

function readRecord(home: string): EffectiveConfig | null {
  let record: EffectiveConfigRecord;
  try {
    record = JSON.parse(readFileSync(effectiveConfigFile(home), 'utf8')) as EffectiveConfigRecord;
  } catch {
    return null;
  }
  // Validated again: a record written by another mprism version may not fit this one's schema.
  const parsed = configSchema.safeParse(record?.config);
  if (!parsed.success || typeof record.supervisorPid !== 'number') return null;
  const config: Config = deepFreeze({ ...(parsed.data as ConfigShape), home, file: record.file ?? null });
  return { config, supervisorPid: record.supervisorPid, writtenAt: String(record.writtenAt) };
}

/**
 * The recorded config while the platform it belongs to runs: its supervisor holds the supervisor
 * lock, or (the supervisor was killed) daemons it started still hold theirs. Null otherwise.
 */
export function runningPlatformConfig(home: string): EffectiveConfig | null {
  const effective = readRecord(home);
  if (effective === null) return null;
  const paths = homePaths(home);
  const supervisor = inspectLock(paths.lockFile('supervisor'));
  if (supervisor.state === 'live') return supervisor.info.pid === effective.supervisorPid ? effective : null;
  return DAEMON_NAMES.some((name) => inspectLock(paths.lockFile(name)).state === 'live') ? effective : null;
}

export interface ResolvedConfig {
  config: Config;
  /** Set when the config file is invalid and the running platform's recorded config is used instead. */
  invalidFile: ConfigError | null;
}

/**
 * loadConfig for commands that must keep working on a running platform: an invalid config file
 * falls back to the config the running supervisor started with. Without a running platform the
 * ConfigError stands.
 */
export function loadConfigOrRunning(options: LoadOptions = {}): ResolvedConfig {
  try {
    return { config: loadConfig(options), invalidFile: null };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const running = runningPlatformConfig(resolveHome(options.env ?? process.env));
    if (running === null) throw err;
    return { config: running.config, invalidFile: err };
  }
}

/**
 * loadConfig for a daemon: one spawned by a running supervisor whose config file has since become
 * invalid starts with the supervisor's config rather than failing until it is marked errored.
 */
export function loadDaemonConfig(): ResolvedConfig {
  try {
    return { config: loadConfig(), invalidFile: null };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const effective = readRecord(resolveHome());
    if (effective === null || effective.supervisorPid !== process.ppid) throw err;
    return { config: effective.config, invalidFile: err };
  }
}

const SECRET_KEY = /password|secret|token|api_?key/i;

/** Passwords, keys and URL credentials anywhere in a config: what must never be printed or logged. */
export function configSecrets(value: unknown, key = ''): string[] {
  if (typeof value === 'string') {
    if (value === '') return [];
    if (SECRET_KEY.test(key)) return [value];
    const m = /^[a-z][a-z0-9+.-]*:\/\/([^/@\s]+)@/i.exec(value);
    if (!m) return [];
    const [user, password] = m[1]!.split(':');
    return [password ?? user!].filter((s) => s.length > 0).flatMap((s) => [s, decodeURIComponentSafe(s)]);
  }
  if (Array.isArray(value)) return value.flatMap((v) => configSecrets(v, key));
  if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([k, v]) => configSecrets(v, k));
  return [];
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `text` with every secret of `config` replaced by `***` (a config error may quote a value). */
export function redactSecrets(text: string, config: unknown): string {
  const secrets = [...new Set(configSecrets(config))].sort((a, b) => b.length - a.length);
  return secrets.reduce((out, s) => out.split(s).join('***'), text);
}
