import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { ConfigError } from '../../src/lib/errors.js';
import { SingleFlight, scheduleJob, validateSchedule } from '../../src/lib/brain/scheduler.js';

const silent = pino({ level: 'silent' });

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('validateSchedule', () => {
  it('accepts 5- and 6-field expressions', () => {
    expect(() => validateSchedule('*/5 * * * *', 'brain.integritySchedule')).not.toThrow();
    expect(() => validateSchedule('* * * * * *', 'brain.integritySchedule')).not.toThrow();
  });

  it('names the config key and the bad field', () => {
    expect(() => validateSchedule('61 * * * *', 'brain.integritySchedule')).toThrow(ConfigError);
    expect(() => validateSchedule('61 * * * *', 'brain.integritySchedule')).toThrow(
      /brain\.integritySchedule: invalid cron expression "61 \* \* \* \*": 61 is a invalid expression for minute/,
    );
    expect(() => validateSchedule('every five minutes', 'k')).toThrow(/expected 5 or 6 fields/);
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

describe('scheduleJob', () => {
  it('rejects an invalid expression before scheduling anything', () => {
    expect(() =>
      scheduleJob({ name: 'x', expression: '* * *', configKey: 'brain.integritySchedule', run: async () => undefined, onSkip: () => undefined, log: silent }),
    ).toThrow(ConfigError);
  });

  it('fires on the schedule, counts overlaps as skips, and stop() waits for the running job', async () => {
    const gate = deferred();
    let runs = 0;
    let skips = 0;
    let finished = false;
    const job = scheduleJob({
      name: 'test',
      expression: '* * * * * *',
      configKey: 'k',
      run: async () => {
        runs += 1;
        await gate.promise;
        finished = true;
      },
      onSkip: () => (skips += 1),
      log: silent,
    });
    await new Promise((r) => setTimeout(r, 2_300));
    expect(runs).toBe(1);
    expect(skips).toBeGreaterThanOrEqual(1);
    expect(job.running).toBe(true);
    const stopping = job.stop();
    setTimeout(() => gate.resolve(), 50);
    await stopping;
    expect(finished).toBe(true);
    expect(job.runNow()).toBeNull();
  });
});
