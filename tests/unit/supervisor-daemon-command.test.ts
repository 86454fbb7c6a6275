import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DAEMON_NODE_ARGS, daemonArgs } from '../../src/lib/supervisor/daemon-command.js';
import { DAEMON_NAMES, daemonKind } from '../../src/lib/paths.js';

describe('daemonArgs', () => {
  it('runs dist/daemons/main.js NAME after the daemon its V8 flags', () => {
    const args = daemonArgs('collector');
    expect(args.slice(-2)[0]).toMatch(/dist[/\\]daemons[/\\]main\.js$/);
    expect(args.at(-1)).toBe('collector');
    expect(args.slice(0, -2)).toEqual(DAEMON_NODE_ARGS.collector);
    expect(DAEMON_NODE_ARGS.collector.some((a) => a.startsWith('--heap-growing-percent='))).toBe(true);
  });

  it('runs a storage instance as the storage daemon under its own name', () => {
    expect(daemonArgs('storage-2').at(-1)).toBe('storage-2');
    expect(daemonArgs('storage-2').slice(0, -2)).toEqual(DAEMON_NODE_ARGS.storage);
  });

  it('gives node only flags it accepts (a mistyped one would stop the daemon at every start)', () => {
    for (const name of DAEMON_NAMES) {
      const out = execFileSync(process.execPath, [...DAEMON_NODE_ARGS[daemonKind(name)], '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
      expect(out).toBe('ok');
    }
  });
});
