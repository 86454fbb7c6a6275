import { loadConfigOrRunning, redactSecrets } from '../lib/config/effective.js';
import type { Config } from '../lib/config/schema.js';
import { yellow } from './output.js';

/**
 * The config for a command that must keep working on a running platform (status, health, stop,
 * diagnose). With the config file invalid it is the one the running supervisor started with, and
 * the file's errors (`file: path: message`) are returned and printed on stderr as a warning.
 */
export function runningConfig(): { config: Config; invalidFile: string | null } {
  const { config, invalidFile } = loadConfigOrRunning();
  if (invalidFile === null) return { config, invalidFile: null };
  const message = redactSecrets(invalidFile.message, config);
  const lines = message.split('\n').map((l) => `  ${l}`).join('\n');
  process.stderr.write(`${yellow('mprism: warning: the config file is invalid; using the configuration the running platform started with:')}\n${lines}\n`);
  return { config, invalidFile: message };
}
