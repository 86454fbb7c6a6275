import { connect, Events, type NatsConnection } from 'nats';
import type { Config } from '../config/schema.js';
import { UnreachableError } from '../errors.js';
import { displayAddress, natsUrl } from '../infra/endpoints.js';

/**
 * Connect for a long-lived daemon: reconnects forever once connected, so a NATS restart
 * does not kill the daemon. The first connect fails fast with UnreachableError.
 */
export async function connectNats(config: Config, name: string, timeoutMs = 5000): Promise<NatsConnection> {
  const url = natsUrl(config);
  try {
    return await connect({
      servers: url.split(','),
      name: `mprism-${name}`,
      timeout: timeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      // A server that vanishes without closing its sockets (a host lost, not a process killed) is
      // found dead after maxPingOut unanswered pings: 2 x 10 s, not the default 2 x 2 min, before
      // the client fails over to another node of the cluster.
      pingInterval: 10_000,
      maxPingOut: 2,
      // A stack captured for every request (each JetStream publish is one) cost about 5% of the
      // collector's CPU; our errors name the subject and the operation anyway.
      noAsyncTraces: true,
    });
  } catch (err) {
    throw new UnreachableError('NATS', displayAddress(url), { cause: err });
  }
}

/** Tracks whether a connection is up, so callers can wait for a reconnect instead of queueing blindly. */
export class ConnectionWatch {
  private up = true;
  private waiters: (() => void)[] = [];
  private readonly lostListeners: ((at: number) => void)[] = [];
  private readonly backListeners: ((at: number) => void)[] = [];

  constructor(nc: NatsConnection) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === Events.Disconnect) {
          this.up = false;
          const at = Date.now();
          for (const listener of this.lostListeners) listener(at);
        } else if (s.type === Events.Reconnect) {
          const at = Date.now();
          for (const listener of this.backListeners) listener(at);
          this.up = true;
          for (const wake of this.waiters.splice(0)) wake();
        }
      }
    })();
  }

  get connected(): boolean {
    return this.up;
  }

  /** Calls `listener` with the time each time the connection is lost. */
  onLost(listener: (at: number) => void): void {
    this.lostListeners.push(listener);
  }

  /** Calls `listener` with the time each time the connection is back. */
  onBack(listener: (at: number) => void): void {
    this.backListeners.push(listener);
  }

  /** Resolves once connected (at once when already), or when the signal aborts. */
  waitConnected(signal?: AbortSignal): Promise<void> {
    if (this.up || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      // The signal lives as long as the daemon and every retry during an outage waits here: the
      // listener must go once the wait is over, or they pile up on the signal.
      const done = () => {
        signal?.removeEventListener('abort', done);
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

/** JetStream API error codes for "not found" answers. */
export const JS_STREAM_NOT_FOUND = 10059;
export const JS_CONSUMER_NOT_FOUND = 10014;
export const JS_MESSAGE_NOT_FOUND = 10037;

/** True for a JetStream "not found" answer: HTTP-like 404, optionally narrowed to the given API error codes. */
export function isJetStreamNotFound(err: unknown, ...codes: number[]): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number } } | null;
  return e?.code === '404' || (e?.api_error?.err_code !== undefined && codes.includes(e.api_error.err_code));
}
