import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/lib/errors.js';
import { SingleFlight, cronProblem, timezoneProblem, validateSchedule } from '../../src/lib/brain/scheduler.js';
import { planSchedules } from '../../src/lib/brain/task-scheduler.js';
import type { Task } from '../../src/lib/brain/tasks.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('validateSchedule', () => {
  it('accepts 5- and 6-field expressions', () => {
    expect(() => validateSchedule('*/5 * * * *', 'brain.tasks.0.cron')).not.toThrow();
    expect(() => validateSchedule('* * * * * *', 'brain.tasks.0.cron')).not.toThrow();
  });

  it('names the config key and the bad field', () => {
    expect(() => validateSchedule('61 * * * *', 'brain.tasks.0.cron')).toThrow(ConfigError);
    expect(() => validateSchedule('61 * * * *', 'brain.tasks.0.cron')).toThrow(
      /brain\.tasks\.0\.cron: invalid cron expression "61 \* \* \* \*": 61 is a invalid expression for minute/,
    );
    expect(() => validateSchedule('every five minutes', 'k')).toThrow(/expected 5 or 6 fields/);
    expect(cronProblem('*/15 * * * * *')).toBeNull();
  });

  it('knows IANA time zones and refuses others', () => {
    expect(timezoneProblem('UTC')).toBeNull();
    expect(timezoneProblem('America/New_York')).toBeNull();
    expect(timezoneProblem('Mars/Olympus')).toMatch(/unknown time zone "Mars\/Olympus"/);
  });
});

describe('SingleFlight', () => {
  it('skips and reports triggers while a run is in progress, then runs again', async () => {
    const gate = deferred();
    let runs = 0;
    let skips = 0;
    const flight = new SingleFlight(
      async () => {
        runs += 1;
        await gate.promise;
      },
      () => (skips += 1),
    );
    const first = flight.trigger();
    expect(first).not.toBeNull();
    expect(flight.trigger()).toBeNull();
    expect(flight.trigger()).toBeNull();
    expect(flight.running).toBe(true);
    expect(skips).toBe(2);
    gate.resolve();
    await first;
    expect(flight.running).toBe(false);
    await flight.trigger();
    expect(runs).toBe(2);
  });

  it('survives a run that rejects', async () => {
    const flight = new SingleFlight(() => Promise.reject(new Error('boom')), () => undefined);
    await expect(flight.trigger()).resolves.toBeUndefined();
    expect(flight.running).toBe(false);
  });

  it('idle() waits for the run in progress', async () => {
    const gate = deferred();
    let finished = false;
    const flight = new SingleFlight(async () => {
      await gate.promise;
      finished = true;
    }, () => undefined);
    flight.trigger();
    const idle = flight.idle();
    setTimeout(() => gate.resolve(), 20);
    await idle;
    expect(finished).toBe(true);
  });
});

describe('planSchedules', () => {
  const task = (id: number, over: Partial<Task> = {}): Task => ({
    id, name: `t${id}`, cron: '* * * * *', timezone: 'UTC', action: 'health', params: {}, enabled: true, skipped: 0,
    createdAt: '', updatedAt: '', ...over,
  });
  const key = (t: Task) => `${t.cron}\u0000${t.timezone}`;

  it('starts a schedule for each enabled task and none for a disabled one', () => {
    const plan = planSchedules(new Map(), [task(1), task(2, { enabled: false })]);
    expect(plan.start.map((t) => t.id)).toEqual([1]);
    expect(plan.stop).toEqual([]);
  });

  it('keeps unchanged schedules, restarts changed ones, stops deleted and disabled ones', () => {
    const same = task(1);
    const cronChanged = task(2, { cron: '*/5 * * * *' });
    const zoneChanged = task(3, { timezone: 'Asia/Tokyo' });
    const disabled = task(4, { enabled: false });
    const scheduled = new Map([
      [1, key(same)],
      [2, key(task(2))],
      [3, key(task(3))],
      [4, key(task(4))],
      [5, key(task(5))],
    ]);
    const plan = planSchedules(scheduled, [same, cronChanged, zoneChanged, disabled]);
    expect(plan.start.map((t) => t.id)).toEqual([2, 3]);
    expect(plan.stop.sort()).toEqual([2, 3, 4, 5]);
  });

  it('a params-only change needs no new schedule (runs read the row)', () => {
    expect(planSchedules(new Map([[1, key(task(1))]]), [task(1, { params: { sinceSeconds: 5 } })])).toEqual({ start: [], stop: [] });
  });
});
