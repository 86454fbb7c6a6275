import { describe, expect, it } from 'vitest';
import { isStackFrame } from '../../src/lib/infra/local-servers.js';

describe('isStackFrame', () => {
  it('drops stack frames from stderr and from the ClickHouse error log, and keeps the lines that explain', () => {
    const frames = [
      '3. /usr/bin/clickhouse-server(DB::Exception::Exception(std::string const&, int)+0x3e) [0x6f4d0e]',
      '  12. 0x7f7e5a0a8eec',
      '2026.11.22 08:15:33.125924 [ 2 ] {} <Error> BaseDaemon: 0. /lib/x86_64-linux-gnu/libc.so.6(+0x8aeec) [0x7f7e5a0a8eec]',
      '2026.11.22 08:15:33.125999 [ 2 ] {} <Error> BaseDaemon: 4. clickhouse-server(DB::loadMetadata(DB::Context&)+0x1b2) [0x5c2e1a2]',
    ];
    const reasons = [
      '2026.11.22 08:15:33.125874 [ 2 ] {} <Error> BaseDaemon: (from thread 3) Received signal Aborted (6).',
      "2026.11.22 08:15:33.100000 [ 1 ] {} <Error> Application: DB::Exception: Unknown table engine NoSuchEngine",
      "clickhouse-server: pthread_mutex_lock.c:450: __pthread_mutex_lock_full: Assertion `e != ESRCH || !robust' failed.",
      'Code: 210. DB::NetException: Connection refused',
    ];
    expect(frames.filter((l) => !isStackFrame(l))).toEqual([]);
    expect(reasons.filter(isStackFrame)).toEqual([]);
  });
});
