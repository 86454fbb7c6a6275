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
  /** Frames accepted in this turn of the event loop, written together by the hub's flush. */
  pending: string[];
  /** Their length in characters: counted against the slow-client limit like unsent bytes. */
  pendingChars: number;
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
  /** Clients with frames waiting for the flush at the end of this turn of the event loop. */
  private readonly dirty = new Set<SimClient<S>>();
  private flushScheduled = false;
  private readonly framesSentChild: { inc(n?: number): void };

  constructor(
    readonly venue: Venue,
    private readonly options: HubOptions,
    private readonly metrics: SimMetrics,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.lastPingAt = now();
    this.framesSentChild = metrics.framesSent.labels(venue);
  }

  get size(): number {
    return this.clients.size;
  }

  all(): Iterable<SimClient<S>> {
    return this.clients;
  }

  accept(ws: WebSocket, route: string, state: S, onText: (client: SimClient<S>, text: string) => void): SimClient<S> {
    const client: SimClient<S> = { ws, route, topics: new Set(), state, alive: true, lastActiveAt: this.now(), pending: [], pendingChars: 0 };
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
      client.pending = [];
      client.pendingChars = 0;
      this.dirty.delete(client);
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
    if (this.isStalled()) return false;
    return this.enqueue(client, frame, this.now());
  }

  /** Sends to every subscriber of a topic; `frame` may depend on the client (combined vs raw). Returns how many took it. */
  publish(topic: string, frame: (client: SimClient<S>) => string): number {
    const subs = this.subscribers.get(topic);
    if (subs === undefined || subs.size === 0) return 0;
    const now = this.now();
    if (now < this.stalledUntil) return 0;
    let delivered = 0;
    for (const client of subs) if (this.enqueue(client, frame(client), now)) delivered++;
    return delivered;
  }

  /**
   * Queues a frame: frames sent in one turn of the event loop leave in one socket write (the server's
   * ticker flushes at the end of its tick; other sends at setImmediate). A frame
   * through ws.send costs two stream writes and a writev slot each, the larger part of the
   * simulator's cost at tens of thousands of trades a second. The frames are the venue's as before
   * (one trade per Binance frame, same bytes on the wire), only coalesced into one write.
   */
  private enqueue(client: SimClient<S>, frame: string, now: number): boolean {
    if (client.ws.readyState !== WebSocket.OPEN) return false;
    if (client.ws.bufferedAmount + client.pendingChars > this.options.slowClientBytes) {
      // Like the real exchanges, a client that stops reading is dropped rather than buffered for ever.
      this.drop(client, 'slow_client', () => client.ws.terminate());
      return false;
    }
    client.pending.push(frame);
    client.pendingChars += frame.length;
    client.lastActiveAt = now;
    this.dirty.add(client);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** Writes every queued frame, a write per client. */
  flush(): void {
    this.flushScheduled = false;
    for (const client of this.dirty) this.flushClient(client);
    this.dirty.clear();
  }

  /** Also right before a close, so that the close frame follows the frames sent before it. */
  private flushClient(client: SimClient<S>): void {
    const frames = client.pending;
    if (frames.length === 0) return;
    client.pending = [];
    client.pendingChars = 0;
    // A client cut or closed meanwhile gets nothing more, as ws.send would have refused it.
    if (client.ws.readyState !== WebSocket.OPEN) return;
    // ws keeps its socket private; writing whole frames to it beside ws's own (pings, pongs, close) is safe.
    const socket = (client.ws as unknown as { _socket?: Socket })._socket;
    if (socket === undefined) for (const f of frames) client.ws.send(f);
    else socket.write(encodeTextFrames(frames));
    this.framesSentChild.inc(frames.length);
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
      this.closeClient(client, 1001, 'simulated disconnect');
      n++;
    }
    return n;
  }

  /** A normal close handshake, after the frames already sent to the client. */
  closeClient(client: SimClient<S>, code: number, reason: string): void {
    this.flushClient(client);
    client.ws.close(code, reason);
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

/**
 * Server-to-client WebSocket text frames (RFC 6455 5.2: FIN, opcode 1, no mask), back to back in
 * one buffer: the bytes ws.send writes for each, in one piece.
 */
export function encodeTextFrames(frames: readonly string[]): Buffer {
  const lengths = new Array<number>(frames.length);
  let total = 0;
  for (let i = 0; i < frames.length; i++) {
    const n = Buffer.byteLength(frames[i] as string, 'utf8');
    lengths[i] = n;
    total += n + (n < 126 ? 2 : n < 65_536 ? 4 : 10);
  }
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < frames.length; i++) {
    const n = lengths[i] as number;
    buf[at++] = 0x81;
    if (n < 126) {
      buf[at++] = n;
    } else if (n < 65_536) {
      buf[at++] = 126;
      buf.writeUInt16BE(n, at);
      at += 2;
    } else {
      buf[at++] = 127;
      buf.writeUInt32BE(Math.floor(n / 2 ** 32), at);
      buf.writeUInt32BE(n >>> 0, at + 4);
      at += 8;
    }
    at += buf.write(frames[i] as string, at, n, 'utf8');
  }
  return buf;
}
