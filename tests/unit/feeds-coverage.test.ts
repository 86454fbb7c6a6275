import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { COLLECTOR_DOWN_DETAIL, StreamCoverage, coverageFile, holeIdOf, readCoverage, writeCoverage, type PersistedStream } from '../../src/lib/feeds/coverage.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const home = () => {
  const d = mkdtempSync(join(tmpdir(), 'mprism-coverage-'));
  dirs.push(d);
  return d;
};

const identity = { venue: 'binance_spot', marketType: 'spot', symbol: 'BTC-USDT', instrument: 'BTCUSDT', dataType: 'trade' } as const;

describe('coverage file', () => {
  it('round-trips what the collector persists, and a missing file is a first start', () => {
    const file = coverageFile(home());
    expect(readCoverage(file, 0)).toEqual({ streams: [], problem: null });
    const streams: PersistedStream[] = [{ identity, last: { eventTime: 1000, id: '42' }, broken: { cause: 'stall', at: 900, detail: 'silent' }, aliveAt: 900 }];
    writeCoverage(file, streams, 2000);
    expect(readCoverage(file, 3000)).toEqual({ streams, problem: null });
  });

  it('moves a corrupt file aside and says so, instead of trusting or crashing on it', () => {
    const h = home();
    const file = coverageFile(h);
    writeCoverage(file, [], 1);
    writeFileSync(file, '{"version":1,"streams":[{"identity":{}}]');
    const read = readCoverage(file, 5000);
    expect(read.streams).toEqual([]);
    expect(read.problem).toMatch(/is corrupt .*moved aside/);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(join(h, 'data', 'collector'))).toContain('coverage.json.corrupt-5000');
  });
});

describe('StreamCoverage', () => {
  it('advances the stored mark only over records acknowledged in publish order', () => {
    const s = new StreamCoverage(identity, { kind: 'trade', contiguousIds: true }, null);
    const ack1 = s.published({ eventTime: 1, id: '1' }, 10);
    const ack2 = s.published({ eventTime: 2, id: '2' }, 20);
    const ack3 = s.published({ eventTime: 3, id: '3' }, 30);
    ack2();
    // 1 is still in flight: a crash now would lose it, so nothing is stored yet, and the
    // collector was alive with everything stored only until 1 was received.
    expect(s.state(100)).toEqual({ last: null, broken: null, aliveAt: 10 });
    ack1();
    expect(s.state(100)).toEqual({ last: { eventTime: 2, id: '2' }, broken: null, aliveAt: 30 });
    ack3();
    expect(s.state(100)).toEqual({ last: { eventTime: 3, id: '3' }, broken: null, aliveAt: 100 });
  });

  it('a resumed stream starts broken since the previous run was last alive, and closes at its first record', () => {
    const s = new StreamCoverage(identity, { kind: 'trade', contiguousIds: true }, { last: { eventTime: 5000, id: '100' }, broken: null, aliveAt: 5100 });
    expect(s.continuity.broken).toEqual({ cause: 'collector_down', at: 5100, detail: COLLECTOR_DOWN_DETAIL });
    expect(s.continuity.onRecord({ eventTime: 9000, id: '110' })).toMatchObject({ cause: 'collector_down', firstMissingId: '101', lastMissingId: '109', missingCount: 9 });
  });

  it('hole ids are stable for the same interval, so re-detections and state rows share one', () => {
    expect(holeIdOf(identity, { fromTime: 1000, firstMissingId: '101' })).toBe('binance_spot/trade/BTCUSDT/1000/101');
    expect(holeIdOf({ ...identity, dataType: 'open_interest' }, { fromTime: 1000, firstMissingId: null })).toBe('binance_spot/open_interest/BTCUSDT/1000');
  });
});
