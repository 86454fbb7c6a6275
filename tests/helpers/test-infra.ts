import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/lib/config/load.js';
import type { Config } from '../../src/lib/config/schema.js';
import { INFRA_NAMES, type InfraName } from '../../src/lib/paths.js';
import { isExternal } from '../../src/lib/infra/endpoints.js';
import { startLocalServer, stopLocalServer } from '../../src/lib/infra/local-servers.js';
import { freePorts } from '../../src/lib/infra/free-port.js';

export interface TestInfra {
  /** Temporary MPRISM_HOME, removed by stop(). */
  home: string;
  configFile: string;
  config: Config;
  /** MPRISM_HOME and MPRISM_CONFIG: merge into the environment of spawned CLI processes. */
  env: Record<string, string>;
  /** Stops every local infra server of this home (also ones a test started through the CLI) and removes the home. */
  stop(): Promise<void>;
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isPlain(v) && isPlain(base[k]) ? deepMerge(base[k] as Plain, v) : v;
  return out;
}

const STOP_TIMEOUT_MS = 10_000;

/**
 * A private MPRISM_HOME under os.tmpdir() with a config whose every port is free, and the requested
 * local servers (default: all five) started in parallel. Never touches ~/.mprism or default ports.
 */
export async function startTestInfra(opts: { servers?: InfraName[]; overrides?: Plain } = {}): Promise<TestInfra> {
  const home = mkdtempSync(join(tmpdir(), 'mprism-test-'));
  const configFile = join(home, 'mprism.yaml');
  const [nats, natsMonitor, hotHttp, hotTcp, coldHttp, coldTcp, redis, postgres, simulator, collector, storage, replication, brain] =
    await freePorts(13);
  const ports: Plain = {
    nats: { port: nats, monitorPort: natsMonitor },
    clickhouse: { hot: { httpPort: hotHttp, tcpPort: hotTcp }, cold: { httpPort: coldHttp, tcpPort: coldTcp } },
    redis: { port: redis },
    postgres: { port: postgres },
    simulator: { port: simulator },
    collector: { port: collector },
    storage: { port: storage },
    replication: { port: replication },
    brain: { port: brain },
  };
  writeFileSync(configFile, stringify(deepMerge(ports, opts.overrides ?? {})));
  const env = { MPRISM_HOME: home, MPRISM_CONFIG: configFile };

  let config: Config;
  try {
    config = loadConfig({ env });
  } catch (err) {
    rmSync(home, { recursive: true, force: true });
    throw err;
  }
  const local = INFRA_NAMES.filter((name) => !isExternal(config, name));
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      const results = await Promise.allSettled(local.map((name) => stopLocalServer(config, name, STOP_TIMEOUT_MS)));
      rmSync(home, { recursive: true, force: true });
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    })());

  const wanted = (opts.servers ?? [...INFRA_NAMES]).filter((name) => local.includes(name));
  const started = await Promise.allSettled(wanted.map((name) => startLocalServer(config, name)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stop().catch(() => undefined);
    throw failed.reason;
  }
  return { home, configFile, config, env, stop };
}
