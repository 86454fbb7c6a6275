import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collector } from '../../src/daemons/collector/run.js';
import { simulator } from '../../src/daemons/simulator/run.js';
import { MARKET_DATA_STREAM, ensureStreams } from '../../src/lib/bus/streams.js';
import { natsUrl } from '../../src/lib/infra/endpoints.js';
import { startLocalServer, stopLocalServer } from '../../src/lib/infra/local-servers.js';
import { recordsIn } from '../../src/lib/bus/message-body.js';
import { messageIdFor } from '../../src/lib/bus/publisher.js';
import { subjectFor, type StreamHoleRecord, type TradeRecord } from '../../src/lib/records.js';
import { runDaemon, stopDaemon, type RunningDaemon } from '../helpers/daemons.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';
import { waitFor } from '../helpers/wait.js';


/**
 * Pause the simulator, let the collector publish what it has and stop, then read what the
 * simulator sent in total and stop it.
 */
async function windDown(http: string, sim: RunningDaemon, col: RunningDaemon): Promise<Stats> {
  await fetch(`${http}/control/pause`, { method: 'POST' });
  await new Promise((r) => setTimeout(r, 300));
  await stopDaemon(col);
  const final = (await (await fetch(`${http}/stats`)).json()) as Stats;
  await stopDaemon(sim);
  return final;
}

type Stats = { trades: Record<string, { sent: number; firstId: number | null; lastId: number | null }> };

describe('collector -> JetStream with the simulator', () => {
  let infra: TestInfra;
  let nc: NatsConnection;

  beforeAll(async () => {
    infra = await startTestInfra({
      servers: ['nats'],
      overrides: {
        simulator: { tradesPerSecond: 300, symbols: ['BTCUSDT', 'ETHUSDT'] },
        // Binance spot trades only: the assertions below count every message in MARKET_DATA.
        collector: {
          staleAfterSeconds: 5,
          reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
          venues: {
            binance_spot: { dataTypes: ['trade'] },
            binance_derivatives: { enabled: false },
            okx_spot: { enabled: false },
            okx_derivatives: { enabled: false },
            deribit_derivatives: { enabled: false },
          },
        },
      },
    });
    nc = await connect({ servers: natsUrl(infra.config) });
    await ensureStreams(await nc.jetstreamManager(), infra.config);
  });

  afterAll(async () => {
    await nc?.close();
    await infra?.stop();
  });

  it('stores every trade the simulator sent, with subjects and Msg-Ids, across a disconnect; counts malformed frames', async () => {
    const http = `http://127.0.0.1:${infra.config.simulator.port}`;
    const sim = runDaemon(simulator, infra.config);
    await waitFor(async () => (await fetch(`${http}/health`).catch(() => null))?.ok === true);
    const col = runDaemon(collector, infra.config);
    const stats = async () => (await (await fetch(`${http}/stats`)).json()) as Stats;

    await waitFor(async () => ((await stats()).trades.BTCUSDT?.sent ?? 0) > 300);
    expect(await col.health()).toMatchObject({ ok: true, nats: 'connected', streams: [{ venue: 'binance_spot', dataType: 'trade', status: 'fresh' }] });

    await fetch(`${http}/control/fault`, { method: 'POST', body: JSON.stringify({ kind: 'malformed' }) });
    const beforeDisconnect = (await stats()).trades.BTCUSDT?.sent ?? 0;
    const fault = await fetch(`${http}/control/fault`, { method: 'POST', body: JSON.stringify({ kind: 'disconnect' }) });
    expect(await fault.json()).toMatchObject({ ok: true, closed: 1 });
    await waitFor(async () => ((await stats()).trades.BTCUSDT?.sent ?? 0) > beforeDisconnect + 300);

    const final = await windDown(http, sim, col);

    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(MARKET_DATA_STREAM);
    const totalSent = Object.values(final.trades).reduce((n, s) => n + s.sent, 0);

    const seen = new Map<string, number[]>();
    const holes: StreamHoleRecord[] = [];
    let storedRecords = 0;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(MARKET_DATA_STREAM, { seq });
      const records = recordsIn(m.json<unknown>()) as (TradeRecord | StreamHoleRecord)[];
      storedRecords += records.length;
      expect(m.header.get('Nats-Msg-Id')).toBe(messageIdFor(records));
      for (const record of records) {
        expect(m.subject).toBe(subjectFor(record));
        if (record.dataType === 'stream_hole') {
          holes.push(record);
          continue;
        }
        expect(record).toMatchObject({ dataType: 'trade', venue: 'binance_spot', marketType: 'spot' });
        const ids = seen.get(record.instrument) ?? [];
        ids.push(Number(record.tradeId));
        seen.set(record.instrument, ids);
      }
    }
    for (const [symbol, s] of Object.entries(final.trades)) {
      const ids = (seen.get(symbol) ?? []).sort((a, b) => a - b);
      expect(ids.length, symbol).toBe(s.sent);
      expect(new Set(ids).size, symbol).toBe(ids.length);
      expect(ids[0], symbol).toBe(s.firstId);
      expect(ids.at(-1), symbol).toBe(s.lastId);
    }
    expect(seen.get('BTCUSDT')?.length).toBeGreaterThan(600);
    // The trades made while the collector reconnected were never sent: each symbol has its hole
    // recorded, bounded by the ids around it, beside the trades.
    expect(storedRecords).toBe(totalSent + holes.length);
    // Trades that arrived together share messages (collector.publish.maxRecordsPerMessage).
    expect(info.state.messages).toBeLessThanOrEqual(storedRecords);
    // The cause is the outage's first: the disconnect, or the malformed frame just before it.
    expect(holes.map((h) => [h.instrument, h.holeDataType, h.state]).sort()).toEqual([
      ['BTCUSDT', 'trade', 'open'],
      ['ETHUSDT', 'trade', 'open'],
    ]);
    for (const h of holes) expect(['disconnect', 'frames_lost']).toContain(h.cause);
    for (const h of holes) {
      const ids = seen.get(h.instrument) ?? [];
      expect(ids).toContain(Number(h.firstMissingId) - 1);
      expect(ids).toContain(Number(h.lastMissingId) + 1);
      expect(ids.filter((id) => id >= Number(h.firstMissingId) && id <= Number(h.lastMissingId))).toEqual([]);
    }

    const metrics = await col.ctx.metrics.metrics();
    expect(metrics).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="trade",code="malformed_json"\} 1/);
    expect(metrics).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="trade",code="unexpected_shape"\} 1/);
    expect(metrics).toMatch(/mprism_collector_reconnects_total\{venue="binance_spot"\} 1/);
    expect(metrics).toMatch(new RegExp(`mprism_collector_messages_total\\{venue="binance_spot",data_type="trade"\\} ${totalSent}`));
    expect(metrics).toMatch(new RegExp(`mprism_collector_published_total\\{venue="binance_spot",data_type="trade"\\} ${totalSent}`));
  });

  it('reports ok=false while NATS is down and stores the trades of the outage once it is back', async () => {
    const http = `http://127.0.0.1:${infra.config.simulator.port}`;
    const jsm = await nc.jetstreamManager();
    const storedBefore = (await jsm.streams.info(MARKET_DATA_STREAM)).state.messages;
    const sim = runDaemon(simulator, infra.config);
    await waitFor(async () => (await fetch(`${http}/health`).catch(() => null))?.ok === true);
    const col = runDaemon(collector, infra.config);
    const stats = async () => (await (await fetch(`${http}/stats`)).json()) as Stats;
    await waitFor(async () => ((await stats()).trades.BTCUSDT?.sent ?? 0) > 200);

    await stopLocalServer(infra.config, 'nats', 10_000);
    await waitFor(async () => (await col.health()).ok === false);
    expect(await col.health()).toMatchObject({ ok: false, nats: 'disconnected' });
    const duringOutage = (await stats()).trades.BTCUSDT?.sent ?? 0;
    await waitFor(async () => ((await stats()).trades.BTCUSDT?.sent ?? 0) > duringOutage + 200);
    await startLocalServer(infra.config, 'nats');
    await waitFor(async () => (await col.health()).ok === true, 30_000);

    const final = await windDown(http, sim, col);

    const totalSent = Object.values(final.trades).reduce((n, s) => n + s.sent, 0);
    await waitFor(async () => !nc.isClosed() && !(await nc.flush().then(() => false, () => true)), 30_000);
    const after = await (await nc.jetstreamManager()).streams.info(MARKET_DATA_STREAM);
    // Every trade of the outage is stored; nothing was missed, so no hole either (the collector kept
    // receiving while NATS was down). The restart of this run finds the previous run's coverage.
    const kinds = new Map<string, number>();
    for (let seq = after.state.last_seq - (after.state.messages - storedBefore) + 1; seq <= after.state.last_seq; seq++) {
      const body = (await (await nc.jetstreamManager()).streams.getMessage(MARKET_DATA_STREAM, { seq })).json<unknown>();
      for (const r of recordsIn(body) as (TradeRecord | StreamHoleRecord)[]) {
        const kind = r.dataType === 'stream_hole' ? `hole ${r.instrument} ${r.cause} ${r.firstMissingId}..${r.lastMissingId}` : r.dataType;
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
    }
    expect(kinds.get('trade')).toBe(totalSent);
  });
});
