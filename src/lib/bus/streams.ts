import { nanos, RetentionPolicy, StorageType, DiscardPolicy, type JetStreamManager, type StreamConfig } from 'nats';
import type { Config } from '../config/schema.js';
import { isJetStreamNotFound, JS_STREAM_NOT_FOUND } from './connection.js';
import { DATA_TYPES } from '../config/schema.js';
import { sleep } from '../backoff.js';
import { MprismError, errorMessage } from '../errors.js';

export const MARKET_DATA_STREAM = 'MARKET_DATA';
export const ORDERBOOK_STREAM = 'ORDERBOOK_SNAP';

export interface StreamSpec {
  name: string;
  subjects: string[];
  /** Upper bound on the stream's max age, hours; null: retention.jetstreamMaxAgeHours alone. */
  maxAgeCapHours: number | null;
}

/** Orderbook snapshots are large and superseded quickly; they get their own stream, kept at most a day. */
export const STREAM_SPECS: readonly StreamSpec[] = [
  {
    name: MARKET_DATA_STREAM,
    // Gap markers and holes ride with the market data: small, and they must outlive the snapshots they explain.
    subjects: [...DATA_TYPES.filter((t) => t !== 'orderbook'), 'orderbook_gap', 'stream_hole'].map((t) => `${t}.>`),
    maxAgeCapHours: null,
  },
  { name: ORDERBOOK_STREAM, subjects: ['orderbook.>'], maxAgeCapHours: 24 },
];

/** The stream's max age: retention.jetstreamMaxAgeHours, within the stream's cap. */
export function streamMaxAgeHours(spec: StreamSpec, config: Config): number {
  const configured = config.retention.jetstreamMaxAgeHours;
  return spec.maxAgeCapHours === null ? configured : Math.min(configured, spec.maxAgeCapHours);
}

export function streamFor(dataType: string): string {
  return dataType === 'orderbook' ? ORDERBOOK_STREAM : MARKET_DATA_STREAM;
}

/** Replicas of each stream: one per node, at most 3 (R3 survives the loss of any one node). */
export function streamReplicas(config: Config): number {
  return Math.min(3, config.nats.cluster.nodes);
}

function desiredConfig(spec: StreamSpec, config: Config): Partial<StreamConfig> & { name: string } {
  const maxAgeMs = Math.round(streamMaxAgeHours(spec, config) * 3600_000);
  return {
    name: spec.name,
    subjects: spec.subjects,
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    // Whole milliseconds: nanos() of a fractional value would not compare equal to what the server returns.
    max_age: nanos(maxAgeMs),
    // The server refuses a duplicate window longer than the max age (nothing older is kept to compare).
    duplicate_window: nanos(Math.min(config.nats.duplicateWindowSeconds * 1000, maxAgeMs)),
    num_replicas: streamReplicas(config),
  };
}

export interface EnsureResult {
  created: string[];
  updated: string[];
  unchanged: string[];
}

/**
 * Create or bring up to date the JetStream streams; idempotent. Runs at every `init` and `start`
 * (provision), so a changed retention.jetstreamMaxAgeHours is applied in place to existing streams
 * (nats-server 2.9 updates max_age without touching the stored messages younger than it).
 */
export async function ensureStreams(jsm: JetStreamManager, config: Config): Promise<EnsureResult> {
  await waitForJetStream(jsm);
  const result: EnsureResult = { created: [], updated: [], unchanged: [] };
  for (const spec of STREAM_SPECS) {
    const want = desiredConfig(spec, config);
    const existing = await jsm.streams.info(spec.name).catch((err: unknown) => {
      if (isJetStreamNotFound(err, JS_STREAM_NOT_FOUND)) return null;
      throw err;
    });
    if (existing === null) {
      await jsm.streams.add(want);
      result.created.push(spec.name);
      continue;
    }
    const have = existing.config;
    const same =
      [...have.subjects].sort().join(',') === [...spec.subjects].sort().join(',') &&
      have.max_age === want.max_age &&
      have.duplicate_window === want.duplicate_window &&
      have.num_replicas === want.num_replicas;
    if (same) {
      result.unchanged.push(spec.name);
    } else {
      await jsm.streams.update(spec.name, { ...have, ...want });
      result.updated.push(spec.name);
    }
  }
  return result;
}

const JETSTREAM_WAIT_MS = 30_000;

export class JetStreamUnavailableError extends MprismError {
  override readonly code = 'unreachable';
}

/**
 * Waits until JetStream answers its API. A freshly started cluster answers 503 (no responders) or
 * "JetStream system temporarily unavailable" until its nodes have elected a meta leader; a
 * stream created before that would fail. Give it a manager made with `checkAPI: false`: the
 * default check asks the API once, and fails, before this can wait.
 */
export async function waitForJetStream(jsm: JetStreamManager, timeoutMs = JETSTREAM_WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await jsm.getAccountInfo();
      return;
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new JetStreamUnavailableError(`JetStream does not answer after ${timeoutMs} ms (a cluster needs a majority of its nodes up to elect a meta leader): ${errorMessage(err)}`, { cause: err });
      }
      await sleep(250);
    }
  }
}

/** Durable name of storage's consumer on a stream; replication reads its progress too. */
export function storageDurable(stream: string): string {
  return `storage-${stream.toLowerCase().replace(/_/g, '-')}`;
}
