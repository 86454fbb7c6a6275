import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, parseDocument } from 'yaml';
import { ConfigError } from '../errors.js';
import { isObject } from '../json-guards.js';
import { PACKAGE_ROOT, homePaths, resolveHome } from '../paths.js';
import { configSchema, type Config, type ConfigShape } from './schema.js';

export const DEFAULT_CONFIG_FILE = join(PACKAGE_ROOT, 'config', 'mprism.yaml');

type Plain = Record<string, unknown>;

function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObject(v) && isObject(base[k]) ? deepMerge(base[k] as Plain, v) : v;
  }
  return out;
}

export function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

const screamingSnake = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

/** Every leaf of the defaults can be overridden by MPRISM_<PATH>, e.g. MPRISM_CLICKHOUSE_HOT_HTTP_PORT. */
function envOverrides(defaults: Plain, env: NodeJS.ProcessEnv, prefix = 'MPRISM'): Plain {
  const out: Plain = {};
  for (const [key, value] of Object.entries(defaults)) {
    const name = `${prefix}_${screamingSnake(key)}`;
    if (isObject(value)) {
      const nested = envOverrides(value, env, name);
      if (Object.keys(nested).length > 0) out[key] = nested;
    } else if (env[name] !== undefined) {
      // YAML scalar parsing gives numbers, booleans, null and flow lists ([a, b]) for free.
      out[key] = parseYaml(env[name] as string);
    }
  }
  return out;
}

function readYamlFile(file: string): Plain {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const line = first.linePos?.[0];
    throw new ConfigError(`${file}: ${line ? `line ${line.line}` : '(root)'}: ${first.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (!isObject(value)) throw new ConfigError(`${file}: (root): must be a mapping of settings`);
  return value;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Explicit config file; default $MPRISM_CONFIG or $MPRISM_HOME/mprism.yaml when it exists. */
  file?: string;
}

/** Defaults <- config file <- MPRISM_* environment, validated once and frozen. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const home = resolveHome(env);
  const defaults = readYamlFile(DEFAULT_CONFIG_FILE);
  const candidate = options.file ?? env.MPRISM_CONFIG ?? homePaths(home).configFile;
  const explicit = options.file !== undefined || env.MPRISM_CONFIG !== undefined;
  let file: string | null = null;
  let merged = defaults;
  if (existsSync(candidate)) {
    file = candidate;
    merged = deepMerge(merged, readYamlFile(candidate));
  } else if (explicit) {
    throw new ConfigError(`${candidate}: cannot read: file does not exist`);
  }
  merged = deepMerge(merged, envOverrides(defaults, env));
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const where = file ?? 'environment';
    const lines = parsed.error.issues.map((i) => `${where}: ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(lines.join('\n'));
  }
  return deepFreeze({ ...(parsed.data as ConfigShape), home, file });
}
