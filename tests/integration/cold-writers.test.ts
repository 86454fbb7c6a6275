import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/lib/config/schema.js';
import { ensurePostgresDatabase } from '../../src/lib/infra/probe.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { withColdWriteLock } from '../../src/lib/replication/cold-writers.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

let infra: TestInfra;

beforeAll(async () => {
  infra = await startTestInfra({ servers: ['postgres'] });
  await ensurePostgresDatabase(infra.config);
});
afterAll(async () => {
  await infra?.stop();
});

describe('writers into cold behind replication', () => {
  it('take turns across PostgreSQL sessions (processes, brains): a second copy starts only once the first ended', async () => {
    const events: string[] = [];
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((r) => (releaseFirst = r));
    const first = withColdWriteLock(infra.config, async () => {
      events.push('first starts');
      await firstHeld;
      events.push('first ends');
    });
    // The first has the lock once it has started.
    while (!events.includes('first starts')) await new Promise((r) => setTimeout(r, 10));
    const second = withColdWriteLock(infra.config, async () => {
      events.push('second starts');
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(events).toEqual(['first starts']);
    releaseFirst();
    await Promise.all([first, second]);
    expect(events).toEqual(['first starts', 'first ends', 'second starts']);
  });

  it('a failed writer leaves the lock free, and with PostgreSQL unreachable the work runs anyway and says so', async () => {
    await expect(withColdWriteLock(infra.config, async () => Promise.reject(new Error('copy failed')))).rejects.toThrow('copy failed');
    expect(await withColdWriteLock(infra.config, async () => 'next')).toBe('next');

    const down: Config = { ...infra.config, postgres: { ...infra.config.postgres, port: await freePort() } };
    const said: string[] = [];
    expect(await withColdWriteLock(down, async () => 'copied', (why) => said.push(why))).toBe('copied');
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/^cold writes not serialized \(PostgreSQL: /);
  });
});
