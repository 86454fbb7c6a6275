import { describe, expect, it } from 'vitest';
import {
  diskUsedPercent,
  integrityProblems,
  judgeDaemons,
  judgeDisk,
  judgeHoles,
  judgeInfra,
  judgeIntegrity,
  judgeJobs,
  judgeReplicationLag,
  judgeStaleStreams,
  type DaemonFacts,
} from '../../src/lib/brain/alerts/judges.js';
import { alertSource, effectiveThreshold, planAlerts, type AlertRule, type OpenRuleAlert, type RuleFinding } from '../../src/lib/brain/alerts/rules.js';
import { ruleFromBody } from '../../src/lib/brain/alerts/routes.js';
import { BadRequestError } from '../../src/lib/brain/api.js';
import type { StreamHealth } from '../../src/lib/feeds/stream-health.js';
import type { Hole } from '../../src/lib/store/holes.js';

const rule = (over: Partial<AlertRule> = {}): AlertRule => ({ name: 'stream-stale', kind: 'stream_stale', severity: 'critical', enabled: true, threshold: 300, ...over });
const firing = (subject: string, message = `${subject} is down`) => ({ subject, message, details: { subject } });
const known = (...subjects: string[]): RuleFinding => ({ firing: subjects.map((s) => firing(s)), unknown: null });
const openAlert = (id: number, subject: string, over: Partial<OpenRuleAlert> = {}): OpenRuleAlert => ({
  id, rule: 'stream-stale', subject, severity: 'critical', message: `${subject} is down`, details: { subject }, ...over,
});

describe('planAlerts', () => {
  it('opens an alert once per rule and subject, and leaves an unchanged open one alone', () => {
    const plan = planAlerts([rule()], new Map([['stream-stale', known('a', 'b')]]), [openAlert(1, 'a')]);
    expect(plan).toEqual({
      open: [{ rule: 'stream-stale', subject: 'b', severity: 'critical', message: 'b is down', details: { subject: 'b' } }],
      refresh: [],
      resolve: [],
    });
  });

  it('refreshes an open alert whose message, severity or details changed; details compare whatever their key order', () => {
    const findings = new Map([['stream-stale', { firing: [firing('a', 'a silent 400 s')], unknown: null } as RuleFinding]]);
    expect(planAlerts([rule()], findings, [openAlert(1, 'a', { message: 'a silent 300 s' })]).refresh).toEqual([
      { id: 1, severity: 'critical', message: 'a silent 400 s', details: { subject: 'a' } },
    ]);
    expect(planAlerts([rule({ severity: 'warning' })], new Map([['stream-stale', known('a')]]), [openAlert(1, 'a')]).refresh).toHaveLength(1);
    const reordered = { firing: [{ subject: 'a', message: 'a is down', details: { x: 1, y: { b: 2, a: 1 } } }], unknown: null } as RuleFinding;
    expect(planAlerts([rule()], new Map([['stream-stale', reordered]]), [openAlert(1, 'a', { details: { y: { a: 1, b: 2 }, x: 1 } })]).refresh).toEqual([]);
  });

  it('resolves an alert whose condition cleared', () => {
    const plan = planAlerts([rule()], new Map([['stream-stale', known()]]), [openAlert(1, 'a'), openAlert(2, 'b')]);
    expect(plan.resolve).toEqual([
      { id: 1, reason: 'cleared' },
      { id: 2, reason: 'cleared' },
    ]);
  });

  it('keeps the alerts of a rule whose facts are unknown, and opens none for it', () => {
    const plan = planAlerts([rule()], new Map([['stream-stale', { unknown: 'collector /health not answering' }]]), [openAlert(1, 'a')]);
    expect(plan).toEqual({ open: [], refresh: [], resolve: [] });
  });

  it('resolves the alerts of a disabled rule and of a rule that no longer exists, and opens none for them', () => {
    const other = openAlert(3, 'x', { rule: 'gone' });
    const plan = planAlerts([rule({ enabled: false })], new Map([['stream-stale', known('a', 'b')]]), [openAlert(1, 'a'), other]);
    expect(plan).toEqual({ open: [], refresh: [], resolve: [{ id: 1, reason: 'rule_disabled' }, { id: 3, reason: 'rule_removed' }] });
  });

  it('keeps rules apart: the same subject under two rules is two alerts', () => {
    const rules = [rule(), rule({ name: 'stream-stale-long', threshold: 900 })];
    const plan = planAlerts(rules, new Map([['stream-stale', known('a')], ['stream-stale-long', known('a')]]), [openAlert(1, 'a')]);
    expect(plan.open.map((o) => alertSource(o.rule, o.subject))).toEqual(['stream-stale-long:a']);
    expect(plan.resolve).toEqual([]);
  });

  it('uses the kind default when a rule has no threshold', () => {
    expect(effectiveThreshold({ kind: 'job_failing', threshold: null })).toBe(3);
    expect(effectiveThreshold({ kind: 'disk_usage', threshold: 75 })).toBe(75);
    expect(effectiveThreshold({ kind: 'infra_down', threshold: null })).toBeNull();
  });
});

const NOW = Date.parse('2024-05-01T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();
const instrument = (name: string, status: 'fresh' | 'stale' | 'starting', ageSeconds: number | null, lastError: string | null = null) => ({
  instrument: name, status, ageSeconds, lastSuccessAt: ageSeconds === null ? null : ago(ageSeconds), lastError,
});
function stream(dataType: StreamHealth['dataType'], source: 'ws' | 'rest', instruments: ReturnType<typeof instrument>[], status: StreamHealth['status'] = 'fresh'): StreamHealth {
  const ages = instruments.map((i) => i.ageSeconds).filter((a): a is number => a !== null);
  const newest = ages.length === 0 ? null : Math.min(...ages);
  return { venue: 'binance_spot', dataType, source, status, lastSuccessAt: newest === null ? null : ago(newest), ageSeconds: newest, lastError: null, instruments };
}
const stale = (streams: StreamHealth[], thresholdSeconds = 300, silentSince = new Map<string, number>()) =>
  judgeStaleStreams({ streams, thresholdSeconds, now: NOW, graceSeconds: 60, silentSince });

describe('judgeStaleStreams', () => {
  it('fires per instrument of a continuous stream silent past the threshold, naming it and its silence', () => {
    const { firing } = stale([stream('trade', 'ws', [instrument('BTCUSDT', 'fresh', 0.2), instrument('ETHUSDT', 'stale', 301, 'ECONNRESET')])]);
    expect(firing).toEqual([
      {
        subject: 'binance_spot.trade.ETHUSDT',
        message: 'binance_spot trade ETHUSDT: no data for 301 s (limit 300 s), last error ECONNRESET',
        details: { venue: 'binance_spot', dataType: 'trade', instrument: 'ETHUSDT', lastSuccessAt: ago(301), silenceSeconds: 301, limitSeconds: 300, lastError: 'ECONNRESET' },
      },
    ]);
    expect(stale([stream('trade', 'ws', [instrument('BTCUSDT', 'stale', 299)])]).firing).toEqual([]);
  });

  it('never fires in the start-up grace', () => {
    expect(stale([stream('trade', 'ws', [instrument('BTCUSDT', 'starting', null)])], 1).firing).toEqual([]);
  });

  it('holds polled types to the staleness table at least: a funding rate 20 minutes old is normal', () => {
    expect(stale([stream('funding_rate', 'rest', [instrument('BTCUSDT', 'fresh', 1200)])]).firing).toEqual([]);
    expect(stale([stream('funding_rate', 'rest', [instrument('BTCUSDT', 'stale', 8 * 3600 + 1)])]).firing.map((f) => f.subject)).toEqual([
      'binance_spot.funding_rate.BTCUSDT',
    ]);
  });

  it('judges liquidations as a whole: one quiet instrument is not a fault, all quiet for an hour is', () => {
    const quietOne = stream('liquidation', 'ws', [instrument('BTCUSDT', 'fresh', 30), instrument('ETHUSDT', 'stale', 7200)]);
    expect(stale([quietOne]).firing).toEqual([]);
    const allQuiet = stream('liquidation', 'ws', [instrument('BTCUSDT', 'stale', 3700), instrument('ETHUSDT', 'stale', 7200)], 'stale');
    expect(stale([allQuiet]).firing.map((f) => [f.subject, f.details.limitSeconds])).toEqual([['binance_spot.liquidation', 3600]]);
  });

  it('counts a never-served stream silent from the grace on, for as long as the brain has seen it so', () => {
    const never = [stream('trade', 'ws', [instrument('BTCUSDT', 'stale', null)], 'stale')];
    const first = stale(never, 300);
    expect(first.firing).toEqual([]);
    expect(first.silentSince).toEqual(new Map([['binance_spot.trade.BTCUSDT', NOW]]));
    const later = judgeStaleStreams({ streams: never, thresholdSeconds: 300, now: NOW + 241_000, graceSeconds: 60, silentSince: first.silentSince });
    expect(later.firing.map((f) => f.message)).toEqual(['binance_spot trade BTCUSDT: no data for over 301 s (limit 300 s)']);
    // Once it delivers, the memory is dropped.
    expect(stale([stream('trade', 'ws', [instrument('BTCUSDT', 'fresh', 1)])], 300, first.silentSince).silentSince.size).toBe(0);
  });
});

const hole = (over: Partial<Hole>): Hole => ({
  holeId: 'h1', venue: 'binance_spot', marketType: 'spot', symbol: 'BTC-USDT', instrument: 'BTCUSDT', dataType: 'trade',
  fromTime: NOW - 7200_000, toTime: NOW - 7190_000, firstMissingId: null, lastMissingId: null, missingCount: null,
  cause: 'disconnect', state: 'open', detail: '', recordedAt: NOW - 7000_000, updatedAt: NOW - 7000_000, ...over,
} as Hole);

describe('the other judges', () => {
  it('holes: only open ones older than the threshold, one alert per stream', () => {
    const holes = [hole({}), hole({ holeId: 'h2', recordedAt: NOW - 3601_000 }), hole({ holeId: 'young', recordedAt: NOW - 60_000 }), hole({ holeId: 'done', state: 'repaired' }), hole({ holeId: 'eth', instrument: 'ETHUSDT', recordedAt: NOW - 100_000 })];
    const firing = judgeHoles(holes, 3600, NOW);
    expect(firing.map((f) => [f.subject, f.details.holes, f.details.holeIds])).toEqual([['binance_spot.trade.BTCUSDT', 2, ['h1', 'h2']]]);
    expect(firing[0]!.message).toBe("binance_spot trade BTCUSDT: 2 open holes (20 s of data), the oldest recorded 7000 s ago; run 'mprism repair'");
  });

  it('replication lag: tables past the threshold; no watermark yet is not lag', () => {
    expect(judgeReplicationLag({ trades: 901, orderbooks: 10, liquidations: null }, 900).map((f) => f.subject)).toEqual(['trades']);
  });

  it('integrity: the latest run with problems fires, its open holes and pending windows do not', () => {
    const report = {
      ok: false,
      tables: [{ table: 'trades', problems: ['w1 short: hot 2, cold 1'], windows: [{ status: 'pending' }] }, { table: 'orderbooks', problems: [] }],
      problems: ["hole: trade binance_spot BTCUSDT: open, run 'mprism repair'", 'stream binance_spot trade stopped'],
    };
    expect(integrityProblems(report)).toEqual(['trades: w1 short: hot 2, cold 1', 'stream binance_spot trade stopped']);
    const fired = judgeIntegrity({ id: 7, finishedAt: ago(5), ok: false, result: report, error: null });
    expect(fired.map((f) => [f.subject, f.message])).toEqual([['integrity', 'integrity run 7: 2 problems: trades: w1 short: hot 2, cold 1; stream binance_spot trade stopped']]);
    const onlyHoles = { ok: false, tables: [], problems: ["hole: x: open, run 'mprism repair'"] };
    expect(judgeIntegrity({ id: 8, finishedAt: ago(5), ok: false, result: onlyHoles, error: null })).toEqual([]);
    expect(judgeIntegrity({ id: 9, finishedAt: ago(5), ok: true, result: { ok: true, tables: [], problems: [] }, error: null })).toEqual([]);
    expect(judgeIntegrity({ id: 10, finishedAt: ago(5), ok: false, result: null, error: 'ClickHouse down' })).toEqual([]);
    expect(judgeIntegrity(null)).toEqual([]);
  });

  it('daemons: errored or restarting, /health failing past the threshold, a dead supervisor; not what was stopped on purpose', () => {
    const base: DaemonFacts = {
      supervisor: { state: 'running', detail: null },
      daemons: [
        { name: 'storage', state: 'errored', wanted: true, detail: 'exited 5 times', restarts: 5 },
        { name: 'replication', state: 'backoff', wanted: true, detail: null, restarts: 2 },
        { name: 'collector', state: 'running', wanted: true, detail: null, restarts: 0 },
        { name: 'simulator', state: 'stopped', wanted: false, detail: null, restarts: 0 },
      ],
      health: new Map([['collector', { status: null, error: 'ECONNREFUSED' }]]),
      now: NOW,
      failingSince: new Map(),
    };
    const first = judgeDaemons(base, 60);
    expect(first.firing.map((f) => f.subject)).toEqual(['storage']);
    expect(first.failingSince).toEqual(new Map([['replication', NOW], ['collector', NOW]]));
    const later = judgeDaemons({ ...base, now: NOW + 61_000, failingSince: first.failingSince }, 60);
    expect(later.firing.map((f) => f.message)).toEqual([
      'storage errored (gave up restarting): exited 5 times',
      'replication restarting for 61 s (limit 60 s, 2 restarts)',
      'collector /health not answering (ECONNREFUSED) for 61 s (limit 60 s)',
    ]);
    const healthy = judgeDaemons({ ...base, daemons: [base.daemons[2]!], health: new Map([['collector', { status: 200, error: null }]]), failingSince: first.failingSince }, 60);
    expect(healthy).toEqual({ firing: [], failingSince: new Map() });
    expect(judgeDaemons({ ...base, supervisor: { state: 'dead', detail: "died without 'mprism stop'" }, daemons: [] }, 60).firing.map((f) => f.subject)).toEqual(['supervisor']);
  });

  it('daemons: a restart while starting is within the threshold; a restart loop past it fires, its memory kept through starting again', () => {
    const restarting = (state: 'backoff' | 'starting' | 'running', restarts: number): DaemonFacts['daemons'][number] => ({ name: 'storage', state, wanted: true, detail: 'exited with code 1', restarts });
    const at = (now: number, daemons: DaemonFacts['daemons'], failingSince: ReadonlyMap<string, number>) =>
      judgeDaemons({ supervisor: { state: 'running', detail: null }, daemons, health: new Map(), now, failingSince }, 60);
    const once = at(NOW, [restarting('backoff', 1)], new Map());
    expect(once.firing).toEqual([]);
    const again = at(NOW + 30_000, [restarting('starting', 1)], once.failingSince);
    expect(again).toEqual({ firing: [], failingSince: new Map([['storage', NOW]]) });
    const loop = at(NOW + 61_000, [restarting('backoff', 4)], again.failingSince);
    expect(loop.firing).toEqual([
      {
        subject: 'storage',
        message: 'storage restarting for 61 s (limit 60 s, 4 restarts): exited with code 1',
        details: { daemon: 'storage', state: 'backoff', restarts: 4, detail: 'exited with code 1', failingSince: new Date(NOW).toISOString() },
      },
    ]);
    // Up again (its /health unchecked or fine): the loop is over, the next restart starts counting afresh.
    const up = at(NOW + 70_000, [restarting('running', 4)], loop.failingSince);
    expect(up.failingSince.size).toBe(0);
    expect(at(NOW + 80_000, [restarting('backoff', 5)], up.failingSince).firing).toEqual([]);
  });

  it('infra: every server not answering', () => {
    const up = { mode: 'local' as const, address: 'a', up: true, pid: 1, version: '1', error: null };
    const firing = judgeInfra([{ ...up, name: 'nats' }, { ...up, name: 'redis', up: false, error: 'ECONNREFUSED', address: '127.0.0.1:6379' }]);
    expect(firing.map((f) => [f.subject, f.message])).toEqual([['redis', 'redis unreachable at 127.0.0.1:6379: ECONNREFUSED']]);
  });

  it('disk: used as df counts it, above the threshold', () => {
    // 100 blocks, 40 free of which 10 reserved for root: 60 used of 90 usable.
    expect(diskUsedPercent({ blocks: 100, bfree: 40, bavail: 30 })).toBeCloseTo(66.67, 2);
    const disk = { path: '/h', usedPercent: 91.24, freeBytes: 2 * 2 ** 30, totalBytes: 100 * 2 ** 30 };
    expect(judgeDisk(disk, 90).map((f) => f.message)).toEqual(['filesystem of /h is 91.2% full (limit 90%), 2.0 GiB free']);
    expect(judgeDisk(disk, 95)).toEqual([]);
  });

  it('jobs: the last N runs all failed; problems found or fewer runs do not count', () => {
    const run = (id: number, failed: boolean) => ({ id, failed, error: failed ? `boom ${id}` : null, finishedAt: ago(id) });
    const runs = new Map([
      ['repair', [run(1, true), run(2, true), run(3, true), run(4, false)]],
      ['integrity', [run(5, true), run(6, true), run(7, false)]],
      ['backfill', [run(8, true), run(9, true)]],
    ]);
    expect(judgeJobs(runs, 3).map((f) => [f.subject, f.message])).toEqual([['repair', 'task repair: the last 3 runs failed, latest: boom 1']]);
  });
});

describe('ruleFromBody', () => {
  const field = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return err instanceof BadRequestError ? err.field : String(err);
    }
    return null;
  };
  it('creates with kind and severity; an update keeps what the body leaves out', () => {
    expect(ruleFromBody({ name: 'disk-80', kind: 'disk_usage', severity: 'warning', threshold: 80 }, null)).toEqual({ name: 'disk-80', kind: 'disk_usage', severity: 'warning', enabled: true, threshold: 80 });
    expect(ruleFromBody({ name: 'disk-80', enabled: false }, { name: 'disk-80', kind: 'disk_usage', severity: 'warning', enabled: true, threshold: 80 })).toEqual({
      name: 'disk-80', kind: 'disk_usage', severity: 'warning', enabled: false, threshold: 80,
    });
  });
  it('names the bad field', () => {
    expect(field(() => ruleFromBody({ name: 'Bad Name', kind: 'disk_usage', severity: 'warning' }, null))).toBe('name');
    expect(field(() => ruleFromBody({ name: 'x', kind: 'disk_full', severity: 'warning' }, null))).toBe('kind');
    expect(field(() => ruleFromBody({ name: 'x', kind: 'disk_usage' }, null))).toBe('severity');
    expect(field(() => ruleFromBody({ name: 'x', kind: 'disk_usage', severity: 'warning', enabled: 'yes' }, null))).toBe('enabled');
    expect(field(() => ruleFromBody({ name: 'x', kind: 'disk_usage', severity: 'warning', threshold: 120 }, null))).toBe('threshold');
    expect(field(() => ruleFromBody({ name: 'x', kind: 'job_failing', severity: 'warning', threshold: 1.5 }, null))).toBe('threshold');
    expect(field(() => ruleFromBody({ name: 'x', kind: 'stream_stale', severity: 'warning', threshold: -1 }, null))).toBe('threshold');
  });
});
