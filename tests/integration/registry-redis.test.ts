import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisUrl } from '../../src/lib/infra/endpoints.js';
import { entriesOfHost, readRegistry, removeEntry, writeHeartbeat, type RegistryEntry } from '../../src/lib/registry.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/** The service registry on a real Redis shared by two machines' daemons of the same names. */
let infra: TestInfra;
let redis: Redis;

beforeAll(async () => {
  infra = await startTestInfra({ servers: ['redis'] });
  redis = new Redis(redisUrl(infra.config));
});
afterAll(async () => {
  redis?.disconnect();
  await infra?.stop();
});

const entry = (name: string, host: string, pid: number): RegistryEntry => ({
  name, pid, host, port: 8085, startedAt: '2026-12-03T00:00:00.000Z', lastHeartbeat: new Date().toISOString(), healthy: true,
});

describe('the service registry across hosts', () => {
  it('keeps one entry per daemon and host: a second machine\'s storage does not overwrite the first\'s', async () => {
    await writeHeartbeat(redis, entry('storage', 'host-a', 101), 30);
    await writeHeartbeat(redis, entry('storage', 'host-b', 202), 30);
    await writeHeartbeat(redis, entry('replication', 'host-a', 103), 30);
    const all = await readRegistry(redis);
    expect(all.map((e) => [e.name, e.host, e.pid])).toEqual([
      ['replication', 'host-a', 103],
      ['storage', 'host-a', 101],
      ['storage', 'host-b', 202],
    ]);
    expect(entriesOfHost(all, 'host-b').map((e) => e.name)).toEqual(['storage']);
  });

  it('a daemon that stops removes its own host\'s entry only', async () => {
    await removeEntry(redis, 'storage', 'host-a');
    expect((await readRegistry(redis)).map((e) => `${e.name}@${e.host}`)).toEqual(['replication@host-a', 'storage@host-b']);
  });
});
