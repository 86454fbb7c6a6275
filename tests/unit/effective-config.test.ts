import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  configSecrets, effectiveConfigFile, loadConfigOrRunning, redactSecrets, removeEffectiveConfig, runningPlatformConfig, writeEffectiveConfig,
} from '../../src/lib/config/effective.js';
import { loadConfig } from '../../src/lib/config/load.js';
import { ConfigError } from '../../src/lib/errors.js';
import { homePaths } from '../../src/lib/paths.js';
import { processStartTime } from '../../src/lib/process-util.js';
import { acquireLock } from '../../src/lib/supervisor/lock.js';

let home: string;
let env: Record<string, string>;
const children: ChildProcess[] = [];
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'mprism-effective-'));
  mkdirSync(homePaths(home).run);
  env = { MPRISM_HOME: home };
  writeFileSync(homePaths(home).configFile, 'storage:\n  port: 18085\nclickhouse:\n  hot:\n    password: "hot pa$$"\n');
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  rmSync(home, { recursive: true, force: true });
});

function breakConfigFile(): void {
  writeFileSync(homePaths(home).configFile, 'storage:\n  batchSize: 0\n');
}

describe('the running platform config', () => {
  it('is written 0600 and read back while the supervisor that wrote it holds its lock', () => {
    const config = loadConfig({ env });
    const lock = acquireLock(homePaths(home).lockFile('supervisor'), 'supervisor');
    try {
      writeEffectiveConfig(config);
      expect(statSync(effectiveConfigFile(home)).mode & 0o777).toBe(0o600);
      const running = runningPlatformConfig(home);
      expect(running?.supervisorPid).toBe(process.pid);
      expect(running?.config).toEqual(config);
    } finally {
      lock.release();
    }
    // supervisor gone, no daemon left: nothing runs with it
    expect(runningPlatformConfig(home)).toBeNull();
  });

  it('belongs to the supervisor that wrote it, not to a later one', () => {
    writeEffectiveConfig(loadConfig({ env }));
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(other);
    const pid = other.pid!;
    writeFileSync(homePaths(home).lockFile('supervisor'), JSON.stringify({ name: 'supervisor', pid, startTime: processStartTime(pid), acquiredAt: 'x' }));
    expect(runningPlatformConfig(home)).toBeNull();
  });

  it('serves while daemons left by a killed supervisor still run', () => {
    writeEffectiveConfig(loadConfig({ env }), 999_999_9);
    const lock = acquireLock(homePaths(home).lockFile('storage'), 'storage');
    try {
      expect(runningPlatformConfig(home)?.config.storage.port).toBe(18085);
    } finally {
      lock.release();
    }
  });

  it('replaces an invalid config file only while the platform runs, keeping the file errors', () => {
    const config = loadConfig({ env });
    breakConfigFile();
    expect(() => loadConfigOrRunning({ env })).toThrow(ConfigError);
    const lock = acquireLock(homePaths(home).lockFile('supervisor'), 'supervisor');
    try {
      writeEffectiveConfig(config);
      const resolved = loadConfigOrRunning({ env });
      expect(resolved.config.storage.port).toBe(18085);
      expect(resolved.invalidFile?.message).toMatch(new RegExp(`^${homePaths(home).configFile}: storage\\.batchSize: `));
    } finally {
      lock.release();
      removeEffectiveConfig(home);
    }
    expect(existsSync(effectiveConfigFile(home))).toBe(false);
  });

  it('a record that does not fit the schema is not used', () => {
    const lock = acquireLock(homePaths(home).lockFile('supervisor'), 'supervisor');
    try {
      writeFileSync(effectiveConfigFile(home), JSON.stringify({ supervisorPid: process.pid, config: { nats: {} } }));
      expect(runningPlatformConfig(home)).toBeNull();
    } finally {
      lock.release();
    }
  });
});

describe('secrets', () => {
  const config = {
    clickhouse: { hot: { url: null, password: 'hot-pw' }, cold: { url: 'http://reader:c%40ld@ch:8123', password: '' } },
    postgres: { url: 'postgres://mprism:pg-secret@pg:5432/mprism' },
    nats: { url: 'nats://token-only@nats:4222' },
    collector: { venues: { binance_spot: { apiKey: 'AKIA123', wsUrl: 'wss://stream.binance.com:9443' } } },
  };

  it('are passwords, keys and URL credentials', () => {
    expect(new Set(configSecrets(config))).toEqual(new Set(['hot-pw', 'c%40ld', 'c@ld', 'pg-secret', 'token-only', 'AKIA123']));
  });

  it('are replaced in text that quotes them', () => {
    expect(redactSecrets('a hot-pw b c@ld c pg-secret d AKIA123 e wss://stream.binance.com:9443', config)).toBe(
      'a *** b *** c *** d *** e wss://stream.binance.com:9443',
    );
  });
});
