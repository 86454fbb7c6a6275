import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { JetStreamManager, NatsConnection } from 'nats';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collector } from '../../src/daemons/collector/run.js';
import { simulator } from '../../src/daemons/simulator/run.js';
import { connectNats } from '../../src/lib/bus/connection.js';
import { ensureStreams, MARKET_DATA_STREAM, ORDERBOOK_STREAM, storageDurable } from '../../src/lib/bus/streams.js';
import type { Venue } from '../../src/lib/config/schema.js';
import { natsUrl } from '../../src/lib/infra/endpoints.js';
import { natsConfigFile } from '../../src/lib/infra/nats-server.js';
import { findServerPid } from '../../src/lib/infra/server-spec.js';
import { localServerSpec } from '../../src/lib/infra/specs.js';
import { NATS_NODE_NAMES, daemonPort, homePaths, type NatsNodeName, type StorageInstanceName } from '../../src/lib/paths.js';
import { isAlive } from '../../src/lib/process-util.js';
import type { SimulatorStats } from '../../src/lib/simulator/server.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { ensureSchema } from '../../src/lib/store/tables.js';
import { DAEMON_MAIN, daemonArgs } from '../../src/lib/supervisor/daemon-command.js';
import { inspectHomeLock } from '../../src/lib/supervisor/lock.js';
import { Supervisor } from '../../src/lib/supervisor/supervisor.js';
import { collectStatus } from '../../src/lib/checks/status.js';
import { runDaemon, stopDaemon } from '../helpers/daemons.js';
import { freePortRuns, startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * Issue 10's acceptance: a 3-node JetStream cluster on loopback, the simulator at a steady rate,
 * the collector, and two storage daemons (real processes from dist/) sharing one durable consumer.
 * kill -9 of the stream leader's node, then of one storage daemon, both mid-stream: every trade the
 * simulator sent is in hot exactly once, counted without FINAL (no merge hides a duplicate).
 */

const BOOKS: readonly { venue: Venue; instrument: string }[] = [
  { venue: 'binance_spot', instrument: 'BTCUSDT' },
  { venue: 'okx_spot', instrument: 'BTC-USDT' },
];
const TRADES_PER_SECOND = 50;
const ACK_WAIT_SECONDS = 8;

const waitFor = async (what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) => {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let infra: TestInfra;
let nc: NatsConnection;
let jsm: JetStreamManager;
let ch: ClickHouseClient;
let db: string;
const storageProcs = new Map<StorageInstanceName, ChildProcess>();

/** A real storage process, as the supervisor spawns it: its output to its own log under the home. */
function startStorage(name: StorageInstanceName): ChildProcess {
  const paths = homePaths(infra.home);
  mkdirSync(paths.logs, { recursive: true });
  const out = openSync(paths.logFile(name), 'a');
  const child = spawn(process.execPath, daemonArgs(name, infra.config), { env: { ...process.env, ...infra.env }, stdio: ['ignore', out, out] });
  closeSync(out);
  storageProcs.set(name, child);
  return child;
}

async function storageHealthy(name: StorageInstanceName): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${daemonPort(infra.config, name)}/health`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

/** Inodes of the sockets a process holds open. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** Does `pid` hold the TCP socket whose local port is `port` (the client side of a ClickHouse request)? */
function ownsLocalPort(pid: number, port: number): boolean {
  const inodes = socketInodes(pid);
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      if (parseInt(cols[1]!.split(':')[1]!, 16) === port && inodes.has(cols[9]!)) return true;
    }
  }
  return false;
}

/**
 * kill -9 of `pid` while ClickHouse runs one of its inserts into trades: the rows may be stored
 * with the messages unacked, the case the key check exists for. An insert already writing rows
 * (written_rows > 0: its body is all in) is waited for, for half the time; then any of its inserts will do.
 */
async function killDuringInsert(pid: number, timeoutMs: number): Promise<{ elapsedMs: number; writtenRows: number }> {
  const started = Date.now();
  while (Date.now() < started + timeoutMs) {
    const writingOnly = Date.now() < started + timeoutMs / 2;
    const inserts = await selectRows<{ port: number; elapsed: number; written: string }>(
      ch,
      `SELECT port, elapsed, written_rows AS written FROM system.processes WHERE startsWith(query, 'INSERT') AND position(query, 'trades') > 0${writingOnly ? ' AND written_rows > 0' : ''}`,
    );
    const theirs = inserts.find((q) => ownsLocalPort(pid, Number(q.port)));
    if (theirs) {
      process.kill(pid, 'SIGKILL');
      return { elapsedMs: Math.round(Number(theirs.elapsed) * 1000), writtenRows: Number(theirs.written) };
    }
  }
  throw new Error(`no insert of pid ${pid} caught in flight within ${timeoutMs} ms`);
}

async function skippedBy(name: StorageInstanceName): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${daemonPort(infra.config, name)}/metrics`)).text();
  return [...text.matchAll(/^mprism_storage_rows_skipped_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

async function tradesInHot(): Promise<number> {
  return Number((await selectRows<{ n: string }>(ch, `SELECT count() AS n FROM ${db}.trades`))[0]?.n);
}

beforeAll(async () => {
  if (!existsSync(DAEMON_MAIN)) throw new Error('dist/ is missing: build first (npx tsc -p tsconfig.json)');
  const [client, monitor, route] = await freePortRuns(3, 3);
  infra = await startTestInfra({
    servers: ['nats', 'nats-2', 'nats-3', 'clickhouse-hot'],
    overrides: {
      nats: { port: client, monitorPort: monitor, cluster: { nodes: 3, port: route } },
      simulator: { tradesPerSecond: TRADES_PER_SECOND, symbols: ['BTCUSDT'] },
      // A batch is held up to a second before its insert: a storage killed at any moment has one in hand.
      storage: { instances: 2, flushIntervalMs: 1000, batchSize: 100_000, ackWaitSeconds: ACK_WAIT_SECONDS },
      collector: {
        reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
        venues: {
          binance_spot: { symbols: ['BTCUSDT'], dataTypes: ['trade'] },
          okx_spot: { symbols: ['BTC-USDT'], dataTypes: ['trade'] },
          binance_derivatives: { enabled: false },
          okx_derivatives: { enabled: false },
          deribit_derivatives: { enabled: false },
        },
      },
    },
  });
  nc = await connectNats(infra.config, 'test');
  jsm = await nc.jetstreamManager({ checkAPI: false });
  await ensureStreams(jsm, infra.config);
  ch = createClickHouse(infra.config.clickhouse.hot);
  db = infra.config.clickhouse.hot.database;
  await ensureSchema(ch, db, await detectDialect(ch));
}, 120_000);

afterAll(async () => {
  for (const child of storageProcs.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await nc?.close().catch(() => undefined);
  await ch?.close();
  await infra?.stop();
}, 60_000);

describe('3-node NATS cluster and two storage daemons', () => {
  it('runs every node with its own config file and replicates the streams three times', async () => {
    expect(natsUrl(infra.config).split(',')).toHaveLength(3);
    for (const name of NATS_NODE_NAMES) {
      const conf = readFileSync(natsConfigFile(infra.config, name), 'utf8');
      expect(conf, name).toContain(`server_name: "mprism-${name}"`);
      expect(findServerPid(localServerSpec(infra.config, name)), name).not.toBeNull();
    }
    for (const stream of [MARKET_DATA_STREAM, ORDERBOOK_STREAM]) {
      // A stream just created may still be electing its leader.
      await waitFor(`${stream} leader`, async () => (await jsm.streams.info(stream)).cluster?.leader !== undefined, 10_000);
      const info = await jsm.streams.info(stream);
      expect(info.config.num_replicas, stream).toBe(3);
      expect(info.cluster?.leader, stream).toMatch(/^mprism-nats(-2|-3)?$/);
      expect(info.cluster?.replicas?.length, stream).toBe(2);
    }
  });

  it('kill -9 of the stream leader, then of a storage daemon, mid-stream: every trade sent is in hot exactly once', async () => {
    const http = `http://127.0.0.1:${infra.config.simulator.port}`;
    const sim = runDaemon(simulator, infra.config);
    await waitFor('simulator', async () => (await fetch(`${http}/health`).catch(() => null))?.ok === true);
    startStorage('storage');
    startStorage('storage-2');
    // Each creates its consumers on a cluster that has just formed; under CI's load (other suites
    // on the same two cores) that once took longer than 30 s. A timeout shows what they logged.
    try {
      await waitFor('both storage daemons healthy', async () => (await storageHealthy('storage')) && (await storageHealthy('storage-2')), 90_000);
    } catch (err) {
      const logs = (['storage', 'storage-2'] as const).map((n) => {
        const file = homePaths(infra.home).logFile(n);
        return `${n}: ${existsSync(file) ? readFileSync(file, 'utf8').slice(-2000) : '(no log)'}`;
      });
      throw new Error(`${(err as Error).message}\n${logs.join('\n')}`);
    }
    // One durable consumer per stream, shared by both, replicated like its stream.
    for (const stream of [MARKET_DATA_STREAM, ORDERBOOK_STREAM]) {
      const info = await jsm.consumers.info(stream, storageDurable(stream));
      // Leader and replicas (all three listed as replicas while it elects its first leader).
      const peers = new Set([info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)].filter((n) => n !== undefined));
      expect(peers.size, stream).toBe(3);
    }
    // Each instance under its own name: lock, pid file and port.
    for (const name of ['storage', 'storage-2'] as const) {
      const lock = inspectHomeLock(infra.config, name);
      expect(lock.state === 'live' ? lock.info.pid : null, name).toBe(storageProcs.get(name)!.pid);
    }
    const col = runDaemon(collector, infra.config);
    let colStopped = false;
    try {
      await waitFor('trades flowing into hot', async () => (await tradesInHot()) > 200, 60_000);

      // The node leading MARKET_DATA (where the trades go): its loss forces a new stream leader.
      const leader = (await jsm.streams.info(MARKET_DATA_STREAM)).cluster?.leader ?? '';
      const leaderNode = NATS_NODE_NAMES.find((n) => `mprism-${n}` === leader) as NatsNodeName | undefined;
      expect(leaderNode, `stream leader ${leader}`).toBeDefined();
      const natsPid = findServerPid(localServerSpec(infra.config, leaderNode!))!;
      const beforeNodeKill = await tradesInHot();
      process.kill(natsPid, 'SIGKILL');
      await waitFor(`${leaderNode} gone`, () => !isAlive(natsPid), 5000);
      await waitFor(
        'a new MARKET_DATA leader',
        async () => {
          const info = await jsm.streams.info(MARKET_DATA_STREAM).catch(() => null);
          return info !== null && typeof info.cluster?.leader === 'string' && info.cluster.leader !== leader;
        },
        30_000,
      );
      // Still flowing through the two nodes left: nothing stopped.
      await waitFor('trades flowing after the node loss', async () => (await tradesInHot()) > beforeNodeKill + 300, 60_000);

      // kill -9 of storage-2 in the middle of one of its inserts: what ClickHouse stores of it is
      // redelivered unacked, after the ack wait, to the survivor, whose key check must skip it. A
      // kill can also land before ClickHouse has the whole insert (nothing stored, nothing to skip):
      // then storage-2 is started again and killed again, until the survivor has skipped rows.
      // Redeliveries from the node loss are over by now (one ack wait later).
      await sleep(ACK_WAIT_SECONDS * 1000);
      const beforeStorageKill = await tradesInHot();
      const skippedBefore = await skippedBy('storage');
      const kills: { elapsedMs: number; writtenRows: number }[] = [];
      let skipped = 0;
      for (let attempt = 1; attempt <= 5 && skipped === 0; attempt++) {
        if (attempt > 1) {
          startStorage('storage-2');
          await waitFor('storage-2 back', () => storageHealthy('storage-2'));
        }
        const victim = storageProcs.get('storage-2')!;
        kills.push(await killDuringInsert(victim.pid!, 30_000));
        await waitFor('storage-2 gone', () => victim.exitCode !== null || victim.signalCode !== null, 5000);
        // Its unacked messages reach the survivor after the ack wait.
        await sleep((ACK_WAIT_SECONDS + 3) * 1000);
        skipped = (await skippedBy('storage')) - skippedBefore;
      }
      expect(skipped, 'a kill after ClickHouse stored the rows (else the key check was not exercised)').toBeGreaterThan(0);
      // The survivor kept storing throughout.
      await waitFor('trades flowing after the storage kill', async () => (await tradesInHot()) > beforeStorageKill + 300, 60_000);

      // Wind down: no more trades; the collector publishes what it has and storage stores it.
      await fetch(`${http}/control/pause`, { method: 'POST' });
      await sleep(500);
      await stopDaemon(col);
      colStopped = true;
      const final = (await (await fetch(`${http}/stats`)).json()) as SimulatorStats;
      const sent = BOOKS.reduce((n, { venue, instrument }) => n + (final.venues[venue].trades[instrument]?.sent ?? 0), 0);
      // Redelivery of storage-2's batch comes after the ack wait; a generous bound on top.
      await waitFor('storage to store every trade', async () => (await tradesInHot()) >= sent, (ACK_WAIT_SECONDS + 60) * 1000);
      await waitFor('every message acked', async () => (await jsm.consumers.info(MARKET_DATA_STREAM, storageDurable(MARKET_DATA_STREAM))).num_ack_pending === 0, 30_000);
      // Anything redelivered by now has been checked against hot: wait out one more ack wait, then count.
      await sleep(ACK_WAIT_SECONDS * 1000);
      const consumer = await jsm.consumers.info(MARKET_DATA_STREAM, storageDurable(MARKET_DATA_STREAM));

      let total = 0;
      for (const { venue, instrument } of BOOKS) {
        const s = final.venues[venue].trades[instrument];
        expect(s?.sent, venue).toBeGreaterThan(TRADES_PER_SECOND * 10);
        // Plain count and uniqExact, no FINAL: a duplicate row not merged yet would show.
        const [r] = await selectRows<{ n: string; u: string; lo: string; hi: string }>(
          ch,
          `SELECT count() AS n, uniqExact(trade_id) AS u, min(toUInt64(trade_id)) AS lo, max(toUInt64(trade_id)) AS hi FROM ${db}.trades WHERE venue = '${venue}' AND instrument = '${instrument}'`,
        );
        const stored = { rows: Number(r?.n), distinct: Number(r?.u), first: Number(r?.lo), last: Number(r?.hi) };
        // The simulator's ids are consecutive: sent rows, all distinct, from its first id to its last = every trade once.
        expect(stored, venue).toEqual({ rows: s?.sent, distinct: s?.sent, first: s?.firstId, last: s?.lastId });
        total += stored.rows;
      }
      const survivor = await storageHealthy('storage');
      expect(survivor, 'storage (the survivor) healthy').toBe(true);
      // Each delivery takes a consumer sequence number: those beyond the stream's were redeliveries.
      const redeliveries = consumer.delivered.consumer_seq - consumer.delivered.stream_seq;
      console.log(
        `nats cluster: ${total} trades sent and stored once, in ${consumer.delivered.stream_seq} messages; killed ${leaderNode} (stream leader) and storage-2; ` +
          `${redeliveries} redeliveries; storage-2 killed ${kills.length} time(s), ${kills.map((k) => `${k.elapsedMs} ms into an insert (${k.writtenRows} rows written)`).join(', ')}; the survivor skipped ${skipped} rows already stored`,
      );
      expect(redeliveries).toBeGreaterThan(0);
    } finally {
      if (!colStopped) await stopDaemon(col);
      await stopDaemon(sim);
      storageProcs.get('storage')?.kill('SIGTERM');
    }
  }, 300_000);

  it('the supervisor runs storage.instances storage daemons and restarts the one killed', async () => {
    for (const child of storageProcs.values()) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    const sup = new Supervisor(infra.config, pino({ level: process.env.MPRISM_TEST_LOG ?? 'silent' }), { watchIntervalMs: 200 });
    try {
      const result = await sup.start(['storage', 'storage-2'], false);
      expect(result.failed).toEqual([]);
      const running = () => sup.snapshot().daemons.filter((d) => d.name.startsWith('storage'));
      expect(running().map((d) => [d.name, d.state, d.port])).toEqual([
        ['storage', 'running', infra.config.storage.port],
        ['storage-2', 'running', infra.config.storage.port + 1],
      ]);
      const status = await collectStatus(infra.config);
      expect(status.processes.filter((p) => p.name.startsWith('storage')).map((p) => [p.name, p.state, p.port])).toEqual([
        ['storage', 'running', infra.config.storage.port],
        ['storage-2', 'running', infra.config.storage.port + 1],
      ]);
      const before = running().find((d) => d.name === 'storage-2')!;
      process.kill(before.pid!, 'SIGKILL');
      await waitFor('storage-2 restarted', () => {
        const now = running().find((d) => d.name === 'storage-2')!;
        return now.state === 'running' && now.pid !== before.pid && now.restarts === 1;
      });
      expect(await storageHealthy('storage-2')).toBe(true);
    } finally {
      await sup.shutdown(10_000);
    }
  }, 120_000);
});
