import { Counter, Gauge, type Registry } from 'prom-client';
import type { Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';
import type { Venue } from '../config/schema.js';
import type { Logger } from '../log.js';

/** Metrics every venue of the simulator shares; created once per registry. */
export interface SimMetrics {
  tradesSent: Counter<'venue' | 'symbol'>;
  framesSent: Counter<'venue'>;
  bookUpdates: Counter<'venue'>;
  restRequests: Counter<'venue' | 'status'>;
  faults: Counter<'kind'>;
  connections: Gauge<'venue'>;
  clientsDropped: Counter<'venue' | 'reason'>;
}

/** Why the simulated venue cut a client, as the real venues do. */
export type DropReason = 'slow_client' | 'no_pong' | 'idle';

export function createSimMetrics(registry: Registry): SimMetrics {
  const registers = [registry];
  return {
    tradesSent: new Counter({ name: 'mprism_simulator_trades_sent_total', help: 'Trades sent to at least one subscriber', labelNames: ['venue', 'symbol'], registers }),
    framesSent: new Counter({ name: 'mprism_simulator_frames_sent_total', help: 'WebSocket data frames sent', labelNames: ['venue'], registers }),
    bookUpdates: new Counter({ name: 'mprism_simulator_book_updates_total', help: 'Orderbook update messages produced', labelNames: ['venue'], registers }),
    restRequests: new Counter({ name: 'mprism_simulator_rest_requests_total', help: 'REST requests answered', labelNames: ['venue', 'status'], registers }),
    faults: new Counter({ name: 'mprism_simulator_faults_total', help: 'Faults injected on request', labelNames: ['kind'], registers }),
    connections: new Gauge({ name: 'mprism_simulator_connections', help: 'Open WebSocket connections', labelNames: ['venue'], registers }),
    clientsDropped: new Counter({ name: 'mprism_simulator_clients_dropped_total', help: 'Connections the simulated venue cut (slow client, unanswered ping, idle)', labelNames: ['venue', 'reason'], registers }),
  };
}

/** One WebSocket client of a venue, with the venue's own per-connection state. */
export interface SimClient<S> {
  readonly ws: WebSocket;
  /** Route under the venue prefix, e.g. `/public/stream`. */
  readonly route: string;
  readonly topics: Set<string>;
  readonly state: S;
  /** Answered our last ping (venues that ping). */
  alive: boolean;
  /**
   * Last text frame either way (venues that close idle clients): OKX cuts a connection only when
   * nothing was pushed and nothing asked for 30 s, so a busy feed needs no client pings.
   */
  lastActiveAt: number;
}

export interface HubOptions {
  /** The venue pings every so often and drops a client that did not answer by the next ping; null: never. */
  pingIntervalMs: number | null;
  /** The venue closes a connection without traffic either way for this long (OKX: 30 s); null: never. */
  idleCloseMs: number | null;
  /** Unsent bytes after which a subscriber counts as too slow and is disconnected (simulator.slowClientBufferMiB). */
  slowClientBytes: number;
}

/**
 * The sockets of one venue: topic subscriptions, fan-out with slow-client protection, pings and
 * idle cuts like the venue's, and the transport faults (stall, disconnect, raw frames).
 */
export class SocketHub<S> {
  private readonly clients = new Set<SimClient<S>>();
  private readonly subscribers = new Map<string, Set<SimClient<S>>>();
  private stalledUntil = 0;
  private lastPingAt: number;

  constructor(
    readonly venue: Venue,
    private readonly options: HubOptions,
    private readonly metrics: SimMetrics,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.lastPingAt = now();
  }

  get size(): number {
    return this.clients.size;
  }

  all(): Iterable<SimClient<S>> {
    return this.clients;
  }

  accept(ws: WebSocket, route: string, state: S, onText: (client: SimClient<S>, text: string) => void): SimClient<S> {
    const client: SimClient<S> = { ws, route, topics: new Set(), state, alive: true, lastActiveAt: this.now() };
    this.clients.add(client);
    this.metrics.connections.set({ venue: this.venue }, this.clients.size);
    ws.on('pong', () => {
      client.alive = true;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return;
      client.lastActiveAt = this.now();
      onText(client, data.toString());
    });
    ws.on('close', () => {
      for (const t of client.topics) this.subscribers.get(t)?.delete(client);
      this.clients.delete(client);
      this.metrics.connections.set({ venue: this.venue }, this.clients.size);
    });
    ws.on('error', (err) => this.log.debug({ venue: this.venue, err: err.message }, 'simulator client socket error'));
    return client;
  }

  subscribe(client: SimClient<S>, topic: string): void {
    client.topics.add(topic);
    let set = this.subscribers.get(topic);
    if (set === undefined) {
      set = new Set();
      this.subscribers.set(topic, set);
    }
    set.add(client);
  }

  unsubscribe(client: SimClient<S>, topic: string): void {
    client.topics.delete(topic);
    this.subscribers.get(topic)?.delete(client);
  }

  hasSubscribers(topic: string): boolean {
    return (this.subscribers.get(topic)?.size ?? 0) > 0;
  }

  subscribersOf(topic: string): Iterable<SimClient<S>> {
    return this.subscribers.get(topic) ?? [];
  }

  /** Sends one frame; false when the venue is stalled or the client is gone or too slow (then dropped). */
  send(client: SimClient<S>, frame: string): boolean {
    if (this.isStalled() || client.ws.readyState !== WebSocket.OPEN) return false;
    if (client.ws.bufferedAmount > this.options.slowClientBytes) {
      // Like the real exchanges, a client that stops reading is dropped rather than buffered for ever.
      this.drop(client, 'slow_client', () => client.ws.terminate());
      return false;
    }
    this.cork(client.ws);
    client.ws.send(frame);
    client.lastActiveAt = this.now();
    this.metrics.framesSent.inc({ venue: this.venue });
    return true;
  }

  /** Sockets corked in this turn of the event loop. */
  private readonly corked = new Set<Socket>();

  /**
   * Frames sent in one turn of the event loop leave in one write: without it every frame is its own
   * writev system call, the larger part of the simulator's cost at tens of thousands of trades a
   * second. The frames are the venue's as before (one trade per Binance frame), only coalesced on the wire.
   */
  private cork(ws: WebSocket): void {
    // ws keeps its socket private; it corks around each frame itself, and corks nest.
    const socket = (ws as unknown as { _socket?: Socket })._socket;
    if (socket === undefined || this.corked.has(socket)) return;
    socket.cork();
    if (this.corked.size === 0) {
      setImmediate(() => {
        for (const s of this.corked) s.uncork();
        this.corked.clear();
      });
    }
    this.corked.add(socket);
  }

  /** Sends to every subscriber of a topic; `frame` may depend on the client (combined vs raw). Returns how many took it. */
  publish(topic: string, frame: (client: SimClient<S>) => string): number {
    const subs = this.subscribers.get(topic);
    if (subs === undefined) return 0;
    let delivered = 0;
    for (const client of subs) if (this.send(client, frame(client))) delivered++;
    return delivered;
  }

  /** No frames, no pings and no answers until `until`; sockets stay open. */
  stall(until: number): void {
    this.stalledUntil = until;
  }

  isStalled(): boolean {
    return this.now() < this.stalledUntil;
  }

  /** Close matching connections with a normal close handshake, so frames already sent still arrive. */
  disconnect(match: (client: SimClient<S>) => boolean = () => true): number {
    let n = 0;
    for (const client of this.clients) {
      if (!match(client)) continue;
      client.ws.close(1001, 'simulated disconnect');
      n++;
    }
    return n;
  }

  /** Pings and idle cuts; call about once a second. */
  housekeeping(): void {
    if (this.isStalled()) return;
    const now = this.now();
    const { idleCloseMs, pingIntervalMs } = this.options;
    if (idleCloseMs !== null) {
      for (const client of this.clients) {
        if (now - client.lastActiveAt > idleCloseMs) this.drop(client, 'idle', () => client.ws.close(4004, 'No data received in 30s.'));
      }
    }
    if (pingIntervalMs === null || now - this.lastPingAt < pingIntervalMs) return;
    this.lastPingAt = now;
    for (const client of this.clients) {
      if (!client.alive) {
        this.drop(client, 'no_pong', () => client.ws.terminate());
        continue;
      }
      client.alive = false;
      client.ws.ping();
    }
  }

  close(): void {
    for (const client of this.clients) client.ws.terminate();
  }

  /** Cuts a client the venue's way, counted and logged: a test reading the collector's holes can see why. */
  private drop(client: SimClient<S>, reason: DropReason, cut: () => void): void {
    // Already being closed (a peer that does not read takes a while to finish the close): once.
    if (client.ws.readyState !== WebSocket.OPEN) return;
    this.metrics.clientsDropped.inc({ venue: this.venue, reason });
    this.log.info({ venue: this.venue, route: client.route, reason, bufferedBytes: client.ws.bufferedAmount }, 'simulator dropped a client');
    cut();
  }
}
