import { getEventListeners, setMaxListeners } from 'node:events';
import { Events, type NatsConnection, type Status } from 'nats';
import { describe, expect, it } from 'vitest';
import { ConnectionWatch } from '../../src/lib/bus/connection.js';

/** The part of a NatsConnection ConnectionWatch reads: its status stream, fed by the test. */
function fakeConnection(): { nc: NatsConnection; emit(type: Events): Promise<void> } {
  const pending: ((s: IteratorResult<Status>) => void)[] = [];
  const queue: Status[] = [];
  const iterator: AsyncIterator<Status> = {
    next: () => new Promise((resolve) => {
      const s = queue.shift();
      if (s) resolve({ value: s, done: false });
      else pending.push(resolve);
    }),
  };
  const nc = { status: () => ({ [Symbol.asyncIterator]: () => iterator }) } as unknown as NatsConnection;
  return {
    nc,
    async emit(type) {
      const s = { type, data: '' } as Status;
      const waiting = pending.shift();
      if (waiting) waiting({ value: s, done: false });
      else queue.push(s);
      await new Promise((r) => setImmediate(r));
    },
  };
}

describe('ConnectionWatch', () => {
  it('holds waiters during an outage, wakes them on reconnect, and leaves no listener on the long-lived signal', async () => {
    const { nc, emit } = fakeConnection();
    const watch = new ConnectionWatch(nc);
    await emit(Events.Disconnect);
    expect(watch.connected).toBe(false);
    const daemon = new AbortController();
    setMaxListeners(100, daemon.signal); // 100 concurrent waits are the point here, not a leak
    let woken = 0;
    const waits = Array.from({ length: 100 }, () => watch.waitConnected(daemon.signal).then(() => woken++));
    await new Promise((r) => setImmediate(r));
    expect(woken).toBe(0);
    expect(getEventListeners(daemon.signal, 'abort')).toHaveLength(100);
    await emit(Events.Reconnect);
    await Promise.all(waits);
    expect(woken).toBe(100);
    expect(watch.connected).toBe(true);
    expect(getEventListeners(daemon.signal, 'abort')).toHaveLength(0);
  });

  it('lets an aborted wait go without waiting for the reconnect', async () => {
    const { nc, emit } = fakeConnection();
    const watch = new ConnectionWatch(nc);
    await emit(Events.Disconnect);
    const shutdown = new AbortController();
    const wait = watch.waitConnected(shutdown.signal);
    shutdown.abort();
    await wait;
    expect(watch.connected).toBe(false);
    await expect(watch.waitConnected(shutdown.signal)).resolves.toBeUndefined();
  });
});
