import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/lib/config/load.js';
import type { Config } from '../../src/lib/config/schema.js';
import { activeInfra, type InfraName } from '../../src/lib/paths.js';
import { isExternal } from '../../src/lib/infra/endpoints.js';
import { startLocalServer, stopLocalServer } from '../../src/lib/infra/local-servers.js';
import { freePorts } from '../../src/lib/infra/free-port.js';
import { portProblem } from '../../src/lib/infra/server-spec.js';

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
 * local servers (default: all the config uses) started in parallel. Never touches ~/.mprism or default ports.
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
  const local = activeInfra(config).filter((name) => !isExternal(config, name));
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      const results = await Promise.allSettled(local.map((name) => stopLocalServer(config, name, STOP_TIMEOUT_MS)));
      rmSync(home, { recursive: true, force: true });
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    })());

  const wanted = (opts.servers ?? local).filter((name) => local.includes(name));
  const started = await Promise.allSettled(wanted.map((name) => startLocalServer(config, name)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stop().catch(() => undefined);
    throw failed.reason;
  }
  return { home, configFile, config, env, stop };
}

/**
 * `runs` bases, each the first of `length` consecutive free ports on 127.0.0.1, the runs not
 * overlapping (a local NATS cluster's node k listens on each configured port + k).
 */
export async function freePortRuns(runs: number, length: number): Promise<number[]> {
  const bases: number[] = [];
  for (let attempt = 0; bases.length < runs; attempt++) {
    if (attempt > 200) throw new Error(`no ${runs} runs of ${length} free ports found`);
    // Below the kernel's ephemeral range (32768 up), where outgoing connections would take them.
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const taken = bases.some((b) => Math.abs(b - base) < length);
    if (taken) continue;
    const problems = await Promise.all(Array.from({ length }, (_, k) => portProblem('127.0.0.1', base + k)));
    if (problems.every((p) => p === null)) bases.push(base);
  }
  return bases;
}
