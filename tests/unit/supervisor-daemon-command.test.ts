import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/lib/config/load.js';
import type { Config } from '../../src/lib/config/schema.js';
import { COLLECTOR_SEMI_SPACE_MIB, configuredBooks, DAEMON_NODE_ARGS, daemonArgs, MANY_BOOKS, nodeFlags } from '../../src/lib/supervisor/daemon-command.js';
import { DAEMON_NAMES } from '../../src/lib/paths.js';

const config = loadConfig({ env: { MPRISM_HOME: mkdtempSync(join(tmpdir(), 'mprism-flags-')) } });
/** The default config with `n` symbols on binance_spot's books. */
function withBooks(n: number): Config {
  const venues = { ...config.collector.venues, binance_spot: { ...config.collector.venues.binance_spot, enabled: true, dataTypes: ['orderbook' as const], symbols: Array.from({ length: n }, (_, i) => `S${i}USDT`) } };
  for (const v of Object.keys(venues) as (keyof typeof venues)[]) if (v !== 'binance_spot') venues[v] = { ...venues[v], enabled: false };
  return { ...config, collector: { ...config.collector, venues } };
}

describe('daemonArgs', () => {
  it('runs dist/daemons/main.js NAME after the daemon its V8 flags', () => {
    const args = daemonArgs('collector', config);
    expect(args.slice(-2)[0]).toMatch(/dist[/\\]daemons[/\\]main\.js$/);
    expect(args.at(-1)).toBe('collector');
    expect(args.slice(0, -2)).toEqual(nodeFlags('collector', config));
    expect(DAEMON_NODE_ARGS.collector.some((a) => a.startsWith('--heap-growing-percent='))).toBe(true);
  });

  it('runs a storage instance as the storage daemon under its own name', () => {
    expect(daemonArgs('storage-2', config).at(-1)).toBe('storage-2');
    expect(daemonArgs('storage-2', config).slice(0, -2)).toEqual(DAEMON_NODE_ARGS.storage);
  });

  it("sizes the collector's young generation by the books it keeps", () => {
    expect(configuredBooks(withBooks(MANY_BOOKS - 1))).toBe(MANY_BOOKS - 1);
    expect(nodeFlags('collector', withBooks(MANY_BOOKS - 1))).toContain(`--max-semi-space-size=${COLLECTOR_SEMI_SPACE_MIB.fewBooks}`);
    expect(nodeFlags('collector', withBooks(MANY_BOOKS))).toContain(`--max-semi-space-size=${COLLECTOR_SEMI_SPACE_MIB.manyBooks}`);
    // A venue whose books are not collected keeps none.
    const tradesOnly = withBooks(MANY_BOOKS);
    tradesOnly.collector.venues.binance_spot = { ...tradesOnly.collector.venues.binance_spot, dataTypes: ['trade'] };
    expect(configuredBooks(tradesOnly)).toBe(0);
  });

  it('gives node only flags it accepts (a mistyped one would stop the daemon at every start)', () => {
    for (const books of [0, MANY_BOOKS]) {
      for (const name of DAEMON_NAMES) {
        const out = execFileSync(process.execPath, [...nodeFlags(name, withBooks(books)), '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
        expect(out).toBe('ok');
      }
    }
  });
});
