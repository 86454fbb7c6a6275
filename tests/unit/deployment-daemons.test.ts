import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/lib/config/load.js';
import { ConfigError } from '../../src/lib/errors.js';
import { prometheusTargets } from '../../src/lib/monitoring.js';
import { activeDaemons } from '../../src/lib/paths.js';

/** `daemons`: which daemons one machine of a platform spread over several hosts runs. */
let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'mprism-daemons-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

function configWith(yaml: string, env: Record<string, string> = {}) {
  const file = join(home, 'mprism.yaml');
  writeFileSync(file, yaml);
  return loadConfig({ env: { MPRISM_HOME: home, MPRISM_CONFIG: file, ...env } });
}

describe('the daemons a machine runs', () => {
  it('are all of them by default, as on one machine', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    expect(c.daemons).toBeNull();
    expect(activeDaemons(c)).toEqual(['simulator', 'storage', 'replication', 'collector', 'brain']);
  });

  it('a worker host runs only its share: every storage instance of it, no simulator without the collector', () => {
    const c = configWith('daemons: [storage, replication]\nstorage:\n  port: 8095\n  instances: 2\n');
    expect(activeDaemons(c)).toEqual(['storage', 'storage-2', 'replication']);
    expect(prometheusTargets(c, activeDaemons(c), 'worker-1').map((g) => g.labels.daemon)).toEqual(['storage', 'storage-2', 'replication']);
  });

  it('the simulator, the collector\'s test venue, goes with the collector', () => {
    expect(activeDaemons(configWith('daemons: [collector, brain]\n'))).toEqual(['simulator', 'collector', 'brain']);
  });

  it('can be set from the environment as YAML', () => {
    expect(activeDaemons(configWith('', { MPRISM_DAEMONS: '[brain]' }))).toEqual(['brain']);
  });

  it('refuses an unknown or repeated name, the simulator, and an empty list', () => {
    expect(() => configWith('daemons: [storage, colector]\n')).toThrow(ConfigError);
    expect(() => configWith('daemons: [storage, colector]\n')).toThrow(/daemons\.1: must be storage, replication, collector or brain/);
    expect(() => configWith('daemons: [simulator]\n')).toThrow(/the simulator goes with the collector/);
    expect(() => configWith('daemons: [storage, storage]\n')).toThrow(/names a daemon twice/);
    expect(() => configWith('daemons: []\n')).toThrow(/at least one daemon/);
  });
});
