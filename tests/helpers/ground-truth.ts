import { connectNats } from '../../src/lib/bus/connection.js';
import { STREAM_SPECS, storageDurable } from '../../src/lib/bus/streams.js';
import { VENUES, type Config, type Venue } from '../../src/lib/config/schema.js';
import { createClickHouse } from '../../src/lib/store/client.js';
import { eventually } from './cli.js';

/**
 * The simulator's ground truth against a ClickHouse tier: what e2e tests of a running platform hold
 * the stored trades to. `config` is the home whose simulator streamed (its port) and whose NATS and
 * ClickHouse addresses are used.
 */

const simUrl = (config: Config, path: string) => `http://127.0.0.1:${config.simulator.port}${path}`;

export async function simPost(config: Config, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(simUrl(config, path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

interface SentStats {
  sent: number;
  firstId: number | null;
  lastId: number | null;
}

export interface SentRange {
  venue: Venue;
  instrument: string;
  firstId: number;
  lastId: number;
}

/** Per venue and instrument: the first and last trade id the simulator sent. */
export async function sentTrades(config: Config): Promise<SentRange[]> {
  const res = await fetch(simUrl(config, '/stats'));
  const stats = (await res.json()) as { venues: Record<Venue, { trades: Record<string, SentStats> }> };
  return VENUES.flatMap((venue) =>
    Object.entries(stats.venues[venue]?.trades ?? {}).flatMap(([instrument, s]) => (s.firstId === null || s.lastId === null ? [] : [{ venue, instrument, firstId: s.firstId, lastId: s.lastId }])),
  );
}

export interface Truth {
  expected: number;
  distinct: number;
  rows: number;
  /** Streams that miss at least one id, e.g. `okx_spot BTC-USDT`. */
  short: string[];
  /** The missing ids of each, for the failure message. */
  missingRanges: string[];
}

type Server = Config['clickhouse']['hot'];

/** The first few runs of ids missing in a tier, with the event times around them: what a failure needs to be understood. */
async function missingIds(ch: ReturnType<typeof createClickHouse>, db: string, s: SentRange): Promise<string> {
  const rs = await ch.query({
    query: `SELECT toUInt64OrZero(trade_id) AS id, any(event_time) AS t FROM ${db}.trades WHERE venue = '${s.venue}' AND instrument = '${s.instrument}' AND toUInt64OrZero(trade_id) >= ${s.firstId} AND toUInt64OrZero(trade_id) <= ${s.lastId} GROUP BY id ORDER BY id`,
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{ id: string; t: string }>();
  const runs: string[] = [];
  let prev = { id: s.firstId - 1, t: 0 };
  for (const r of [...rows.map((x) => ({ id: Number(x.id), t: Number(x.t) })), { id: s.lastId + 1, t: 0 }]) {
    if (r.id > prev.id + 1 && runs.length < 5) runs.push(`${prev.id + 1}..${r.id - 1} (after ${new Date(prev.t).toISOString()})`);
    prev = r;
  }
  return runs.join(', ');
}

/**
 * A tier (hot by default) against the simulator: every id from the first to the last it sent, per
 * venue and instrument, by plain count() and uniqExact (no FINAL: an unmerged duplicate shows).
 */
export async function truth(config: Config, server: Server = config.clickhouse.hot): Promise<Truth> {
  const ch = createClickHouse(server);
  try {
    let expected = 0;
    let distinct = 0;
    let rows = 0;
    const short: string[] = [];
    const missingRanges: string[] = [];
    for (const s of await sentTrades(config)) {
      const rs = await ch.query({
        query: `SELECT uniqExact(trade_id) AS d, count() AS n FROM ${server.database}.trades WHERE venue = '${s.venue}' AND instrument = '${s.instrument}' AND toUInt64OrZero(trade_id) >= ${s.firstId} AND toUInt64OrZero(trade_id) <= ${s.lastId}`,
        format: 'JSONEachRow',
      });
      const [r] = await rs.json<{ d: string; n: string }>();
      const want = s.lastId - s.firstId + 1;
      expected += want;
      distinct += Number(r?.d ?? 0);
      rows += Number(r?.n ?? 0);
      if (Number(r?.d ?? 0) < want) {
        short.push(`${s.venue} ${s.instrument}`);
        missingRanges.push(`${s.venue} ${s.instrument}: ${await missingIds(ch, server.database, s)}`);
      }
    }
    return { expected, distinct, rows, short, missingRanges };
  } finally {
    await ch.close();
  }
}

/** Messages storage has not acked yet, over both streams: what is still on its way to hot. */
export async function unacked(config: Config): Promise<number> {
  const nc = await connectNats(config, 'ground-truth');
  try {
    const jsm = await nc.jetstreamManager();
    let n = 0;
    for (const spec of STREAM_SPECS) {
      const info = await jsm.consumers.info(spec.name, storageDurable(spec.name));
      n += info.num_pending + info.num_ack_pending;
    }
    return n;
  } finally {
    await nc.close();
  }
}

/**
 * Pauses the simulator and waits until the pipeline is drained: storage has acked everything
 * JetStream holds (a message handed to a pull that died waits out the ack wait first) and hot
 * has stopped changing.
 */
export async function pauseAndDrain(config: Config): Promise<Truth> {
  await simPost(config, '/control/pause');
  await new Promise((r) => setTimeout(r, 1000));
  await eventually('storage acked everything', async () => (await unacked(config)) === 0, 90_000, 1000);
  let last = await truth(config);
  for (;;) {
    await new Promise((r) => setTimeout(r, 1500));
    const now = await truth(config);
    if (now.distinct === last.distinct && now.rows === last.rows && now.expected === last.expected) return now;
    last = now;
  }
}
