import { z } from 'zod';
import { derivedPortClashes } from './derived-ports.js';

const port = z.number().int().min(1).max(65535);
const host = z.string().min(1);
/** An external URL: when set, mprism uses it and starts no local server of that kind. */
const externalUrl = z.string().url().nullable();

/** A replica of a tier beyond its first (the tier's own url/host/ports); database, user and password are the tier's. */
const clickhouseReplica = z.strictObject({
  url: externalUrl,
  host,
  httpPort: port,
  tcpPort: port,
  /** Where the other replicas fetch parts from this one (local servers only; external servers set their own). */
  interserverPort: port,
});

/**
 * Opt-in: the tier is a replicated ClickHouse (ReplicatedReplacingMergeTree, coordinated by ZooKeeper).
 * Every replica holds every row; writes go to the tier's own address, reads fail over to the others.
 */
const clickhouseReplication = z.strictObject({
  /** The first replica's (the tier's own) interserver port, when mprism runs it. */
  interserverPort: port,
  replicas: z.array(clickhouseReplica).min(1).max(8),
});

const clickhouseServer = z
  .strictObject({
    url: externalUrl,
    host,
    httpPort: port,
    tcpPort: port,
    database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a plain identifier'),
    user: z.string(),
    password: z.string(),
    /** null: one server with plain ReplacingMergeTree tables. */
    replication: clickhouseReplication.nullable().default(null),
  })
  .superRefine((s, ctx) => {
    // mprism either runs all of a tier's replicas or none of them: a mix would start a local replica
    // wired to a ZooKeeper the external ones do not share.
    s.replication?.replicas.forEach((r, i) => {
      if ((r.url === null) !== (s.url === null)) {
        ctx.addIssue({
          code: 'custom',
          path: ['replication', 'replicas', i, 'url'],
          message: s.url === null ? 'must be null like the tier\'s url (mprism runs every replica of a local tier)' : 'must be set like the tier\'s url (an external tier\'s replicas are external too)',
        });
      }
    });
  });

/** ZooKeeper for replicated tiers that mprism runs locally; unused unless a local tier is replicated. */
const zookeeper = z.strictObject({
  /** host:port of an existing ensemble; null: mprism runs one ZooKeeper under MPRISM_HOME. */
  servers: z.array(z.string().regex(/^[^\s:,]+:\d{1,5}$/, 'must be host:port')).min(1).nullable(),
  host,
  port,
});

export const VENUES = [
  'binance_spot',
  'binance_derivatives',
  'okx_spot',
  'okx_derivatives',
  'deribit_derivatives',
] as const;
export type Venue = (typeof VENUES)[number];

export const DATA_TYPES = [
  'orderbook',
  'trade',
  'funding_rate',
  'open_interest',
  'liquidation',
  'lsr_top_position',
  'lsr_all_account',
  'volatility_index',
] as const;
export type DataType = (typeof DATA_TYPES)[number];

const venueConfig = z.strictObject({
  enabled: z.boolean(),
  /** Scheme, host and port only: each venue adapter appends its own routes (/stream, /ws/v5/public...). */
  wsUrl: z.string().url(),
  restUrl: z.string().url(),
  /** Native instrument ids (BTCUSDT, BTC-USDT-SWAP); for Deribit DVOL the currency (BTC). */
  symbols: z.array(z.string().min(1)).min(1),
  dataTypes: z.array(z.enum(DATA_TYPES)).min(1),
  /**
   * Sent only to REST history endpoints that need one (Binance USD-M historicalTrades), when
   * `mprism repair` refills a hole. A secret: never logged, never in --json.
   */
  apiKey: z.string().min(1).nullable().default(null),
});

/** What each venue offers (issue 3's coverage); a config asking for more is refused at load time. */
export const VENUE_DATA_TYPES: { readonly [V in Venue]: readonly DataType[] } = {
  binance_spot: ['orderbook', 'trade'],
  binance_derivatives: ['orderbook', 'trade', 'funding_rate', 'open_interest', 'liquidation', 'lsr_top_position', 'lsr_all_account'],
  okx_spot: ['orderbook', 'trade'],
  okx_derivatives: ['orderbook', 'trade', 'funding_rate', 'open_interest', 'liquidation', 'lsr_top_position', 'lsr_all_account'],
  deribit_derivatives: ['volatility_index'],
};

/**
 * OKX swaps whose contract is worth a fixed number of coins (linear: USDT- or USDC-margined). An
 * inverse swap's contract is worth USD, and its sizes could not be published in coins.
 */
const OKX_LINEAR_SWAP = /^[A-Z0-9]+-(USDT|USDC)-SWAP$/;

/** Data types collected by polling REST, and how often each is polled. */
export const POLLED_DATA_TYPES = ['funding_rate', 'open_interest', 'lsr_top_position', 'lsr_all_account', 'volatility_index'] as const;
export type PolledDataType = (typeof POLLED_DATA_TYPES)[number];
const seconds = z.number().positive();

/** Durations in config and flags: 90s, 15m, 12h, 7d. */
export const DURATION_PATTERN = /^(\d+)(s|m|h|d)$/;
const duration = z.string().regex(DURATION_PATTERN, 'must be a duration like 90s, 15m, 12h or 7d');
const concurrency = z.number().int().min(1).max(32);

/** What a brain task does when it fires. */
export const TASK_ACTIONS = ['integrity', 'repair', 'retention', 'backfill', 'health'] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

/** Names of tasks and alert rules: they appear in URLs, metrics and alert sources. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const name = z.string().regex(NAME_PATTERN, 'lowercase letters, digits, - and _, at most 63');

const taskSeed = z.strictObject({
  name,
  /** node-cron: 5 fields, or 6 with seconds first. */
  cron: z.string().min(1),
  timezone: z.string().min(1).default('UTC'),
  action: z.enum(TASK_ACTIONS),
  params: z.record(z.string(), z.unknown()).default({}),
  enabled: z.boolean().default(true),
});
export type TaskSeed = z.infer<typeof taskSeed>;

/** The conditions an alert rule can watch. */
export const ALERT_RULE_KINDS = [
  'stream_stale',
  'hole_unrepaired',
  'replication_lag',
  'integrity_problems',
  'daemon_unhealthy',
  'infra_down',
  'disk_usage',
  'job_failing',
] as const;
export type AlertRuleKind = (typeof ALERT_RULE_KINDS)[number];
export const ALERT_SEVERITIES = ['warning', 'critical'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

const alertRuleSeed = z.strictObject({
  name,
  kind: z.enum(ALERT_RULE_KINDS),
  severity: z.enum(ALERT_SEVERITIES),
  enabled: z.boolean().default(true),
  /**
   * The kind's threshold: seconds for stream_stale, hole_unrepaired, replication_lag and
   * daemon_unhealthy; percent for disk_usage; failed runs in a row for job_failing; unused otherwise.
   */
  threshold: z.number().min(0).nullable().default(null),
});
export type AlertRuleSeed = z.infer<typeof alertRuleSeed>;

export const configSchema = z.strictObject({
  nats: z.strictObject({
    /** One URL, or a cluster's servers separated by commas: clients fail over between them. */
    url: z
      .string()
      .refine((v) => v.split(',').every((u) => z.string().url().safeParse(u.trim()).success), 'must be a URL, or URLs separated by commas')
      .nullable(),
    host,
    /** Node k of a local cluster (k = 0, 1, 2) listens on port + k, monitorPort + k and cluster.port + k. */
    port,
    monitorPort: port,
    /** JetStream duplicate window for Msg-Id dedupe. */
    duplicateWindowSeconds: z.number().int().min(1),
    cluster: z.strictObject({
      /**
       * Size of the JetStream cluster: local nodes started when url is null, else the external
       * cluster's size. Streams get min(3, nodes) replicas. Two nodes would stop when either is lost.
       */
      nodes: z.union([z.literal(1), z.literal(3)], { error: 'must be 1 or 3 (a 2-node JetStream cluster stops when either node is lost)' }),
      name: z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be letters, digits, - or _'),
      /** Route port of the first local node. */
      port,
    }),
  }),
  clickhouse: z
    .strictObject({
      hot: clickhouseServer,
      cold: clickhouseServer,
      zookeeper: zookeeper.default({ servers: null, host: '127.0.0.1', port: 2181 }),
    })
    .superRefine((c, ctx) => {
      // Replicated tables live at /clickhouse/tables/{shard}/<database>/<table> in ZooKeeper: two
      // replicated tiers with one database name would be one table.
      if (c.hot.replication !== null && c.cold.replication !== null && c.hot.database === c.cold.database) {
        ctx.addIssue({ code: 'custom', path: ['cold', 'database'], message: 'replicated hot and cold need different database names (they would share ZooKeeper paths)' });
      }
    }),
  redis: z.strictObject({ url: externalUrl, host, port }),
  postgres: z.strictObject({ url: externalUrl, host, port, database: z.string().min(1), user: z.string().min(1) }),
  simulator: z.strictObject({
    port,
    /** Trades per second per symbol. */
    tradesPerSecond: z.number().positive().max(100_000),
    symbols: z.array(z.string().min(1)).min(1),
    seed: z.number().int(),
    /** Unsent bytes per client, MiB, after which it is dropped as too slow (as the venues do). */
    slowClientBufferMiB: z.number().int().min(1).max(4096),
    /** A raw capture file (gzip JSONL) played instead of synthetic data for the venues it holds; speed divides the recorded gaps. */
    replay: z.strictObject({ file: z.string().min(1).nullable(), speed: z.number().positive().max(10_000) }).default({ file: null, speed: 1 }),
  }),
  collector: z.strictObject({
    port,
    venues: z
      .strictObject({
        binance_spot: venueConfig,
        binance_derivatives: venueConfig,
        okx_spot: venueConfig,
        okx_derivatives: venueConfig,
        deribit_derivatives: venueConfig,
      })
      .superRefine((venues, ctx) => {
        for (const venue of VENUES) {
          venues[venue].dataTypes.forEach((dataType, i) => {
            if (!VENUE_DATA_TYPES[venue].includes(dataType)) {
              ctx.addIssue({ code: 'custom', path: [venue, 'dataTypes', i], message: `${venue} does not offer ${dataType} (it offers ${VENUE_DATA_TYPES[venue].join(', ')})` });
            }
          });
        }
        venues.okx_derivatives.symbols.forEach((instId, i) => {
          if (!OKX_LINEAR_SWAP.test(instId)) {
            const message = `${instId} is not a linear OKX swap (<BASE>-USDT-SWAP or <BASE>-USDC-SWAP): sizes are stored in coins, and only a linear swap's contract is worth a fixed number of coins`;
            ctx.addIssue({ code: 'custom', path: ['okx_derivatives', 'symbols', i], message });
          }
        });
      }),
    reconnect: z.strictObject({ initialDelayMs: z.number().int().positive(), maxDelayMs: z.number().int().positive() }),
    /**
     * Seconds without any frame or ping before a connection counts as dead and is replaced. Venues
     * that ping (or that we ping) keep a quiet connection alive; a silent subscription shows as stale
     * in health by data age instead.
     */
    staleAfterSeconds: z.number().positive(),
    /** Before its first record a venue x data type is `starting`, not `stale`, for this long. */
    startupGraceSeconds: z.number().min(0),
    pollIntervalSeconds: z.strictObject({
      funding_rate: seconds,
      open_interest: seconds,
      lsr_top_position: seconds,
      lsr_all_account: seconds,
      volatility_index: seconds,
    }),
    /** Long/short ratio period asked of the venues (both Binance and OKX know 5m). */
    lsrPeriod: z.enum(['5m', '15m', '30m', '1h', '2h', '4h', '6h', '12h', '1d']),
    orderbook: z.strictObject({
      /** Levels per side in each published snapshot. */
      depth: z.number().int().min(1).max(1000),
      /** Published snapshots per symbol per second, at most: the rate while the collector has headroom. */
      maxSnapshotsPerSecond: z.number().positive().max(1000),
      /**
       * The floor under load: an overloaded collector thins every book's snapshots toward it, evenly.
       * Unset: 1, or maxSnapshotsPerSecond where that is lower. At least one every 10 s, so a thinned
       * book never looks stale.
       */
      minSnapshotsPerSecond: z.number().min(0.1).max(1000).optional(),
    }).refine((o) => o.minSnapshotsPerSecond === undefined || o.minSnapshotsPerSecond <= o.maxSnapshotsPerSecond, {
      message: 'minSnapshotsPerSecond must not exceed maxSnapshotsPerSecond',
      path: ['minSnapshotsPerSecond'],
    }),
    publish: z.strictObject({
      /**
       * Records of one stream per JetStream message, at most: those that gathered while the previous
       * publish was in flight travel together (one when the feed is quiet). 1: a message per record.
       */
      maxRecordsPerMessage: z.number().int().min(1).max(10_000),
      /**
       * Memory for records JetStream has not acknowledged yet: half for the publish window, half
       * shared by the venues' queues. When it is full the sockets pause; a venue that then drops the
       * connection leaves a recorded hole. Bounds the collector during a NATS outage.
       */
      bufferMiB: z.number().int().min(4).max(4096),
    }),
    capture: z.strictObject({
      /** Write every raw frame with its receive time to gzip JSONL files. */
      enabled: z.boolean(),
      /** null: $MPRISM_HOME/capture */
      dir: z.string().min(1).nullable(),
      /** A capture file is closed and a new one begun after this many (uncompressed) bytes. */
      maxFileBytes: z.number().int().min(1024),
    }),
  }),
  storage: z.strictObject({
    /** Instance k (k = 0, 1...) listens on port + k. */
    port,
    /** Storage daemons the supervisor runs here; they share one durable consumer per stream (a work queue). */
    instances: z.number().int().min(1).max(4),
    batchSize: z.number().int().positive(),
    flushIntervalMs: z.number().int().positive(),
    /** Unacked messages of a storage that died are redelivered after this long. */
    ackWaitSeconds: z.number().int().min(5),
  }),
  replication: z.strictObject({
    port,
    windowSeconds: z.number().int().positive(),
    safetyLagSeconds: z.number().int().min(0),
    /** Windows this far behind the watermark are re-checked for rows that reached hot late (storage outage, redelivery). */
    lateDataSeconds: z.number().int().min(0),
    pollIntervalMs: z.number().int().positive(),
    /** Each table is copied by one daemon at a time, the holder of its Redis lease `replication:<table>`. */
    lease: z.strictObject({ ttlSeconds: z.number().int().min(3).max(300) }),
  }),
  brain: z.strictObject({
    port,
    /** The API's bind address. Loopback by default: mutations need the token, but reads do not. */
    host,
    /** One active brain: the leader holds this Redis lease; a standby takes over after it lapses. */
    lease: z.strictObject({ ttlSeconds: z.number().int().min(3).max(300) }),
    /**
     * Seeded into PostgreSQL's `tasks` on the first start (a task whose name exists is left alone):
     * afterwards tasks are edited through the API or `mprism tasks`, not here.
     */
    tasks: z.array(taskSeed).superRefine((tasks, ctx) => {
      const seen = new Set<string>();
      tasks.forEach((t, i) => {
        if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate task name ${t.name}` });
        seen.add(t.name);
      });
    }),
    /** History initialization on first start (and `mprism backfill`): stages fill history in this order. */
    init: z.strictObject({
      enabled: z.boolean(),
      /** How far back, e.g. 7d, 12h. */
      since: duration,
      /** Trades are optional: a day of trades is far more than a day of everything else. */
      trades: z.boolean(),
      /** Requests in flight at once per stage (each venue's rate budget still applies). */
      concurrency: z.strictObject({
        funding_rate: concurrency,
        open_interest: concurrency,
        lsr: concurrency,
        volatility_index: concurrency,
        trade: concurrency,
      }),
      /** A stage item that failed this many times is left to the scheduled backfill. */
      maxTries: z.number().int().min(1).max(50),
    }),
    alerts: z.strictObject({
      /** JSON POST per alert opened or resolved; null: no webhook. */
      webhookUrl: z.string().url().nullable(),
      webhookTimeoutMs: z.number().int().positive(),
      /** Delivery attempts per event, with exponential backoff between them. */
      webhookMaxAttempts: z.number().int().min(1).max(20),
      /** Every alert opened or resolved is also published here (core NATS). */
      natsSubject: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be a NATS subject without wildcards'),
      /** Seeded into PostgreSQL's `alert_rules` on first start; afterwards edited through the API. */
      rules: z.array(alertRuleSeed),
    }),
  }),
  retention: z.strictObject({
    /** Days hot keeps; a partition leaves hot only once every window in it is verified in cold. */
    hotDays: z.number().int().min(1),
    /** Days cold keeps; null: forever. */
    coldDays: z.number().int().min(1).nullable(),
    /** JetStream streams' max age, hours (applied to the streams at start). */
    jetstreamMaxAgeHours: z.number().positive(),
    /** Days the brain keeps finished task runs and resolved alerts with their deliveries (PostgreSQL). */
    brainHistoryDays: z.number().int().min(1),
  }).superRefine((r, ctx) => {
    // Hot drops only what cold holds; a cold that keeps less would leave hot the only copy to drop.
    if (r.coldDays !== null && r.coldDays < r.hotDays) {
      ctx.addIssue({ code: 'custom', path: ['coldDays'], message: `must be at least hotDays (${r.hotDays}), or null to keep everything` });
    }
  }),
  registry: z.strictObject({
    heartbeatIntervalMs: z.number().int().positive(),
    ttlSeconds: z.number().int().positive(),
  }),
  supervisor: z.strictObject({
    initialBackoffMs: z.number().int().positive(),
    maxBackoffMs: z.number().int().positive(),
    /** A daemon up this long has its backoff and fast-failure count reset. */
    stableAfterMs: z.number().int().positive(),
    /** This many exits in a row, each before stableAfterMs, put the daemon in state `errored`. */
    maxFastFailures: z.number().int().positive(),
    healthTimeoutMs: z.number().int().positive(),
  }),
  logs: z.strictObject({
    maxBytes: z.number().int().min(1024),
    keep: z.number().int().min(1),
  }),
  /**
   * Bind address of the /health and /metrics servers of collector, storage and replication (the
   * brain serves both on brain.host beside its API; the simulator stays on loopback). Loopback by
   * default: the endpoints need no token and tell a reader the platform's layout and load. The
   * defaults here and below let a configuration recorded by an earlier version (run/) still load.
   */
  metrics: z.strictObject({ host }).default({ host: '127.0.0.1' }),
  /**
   * The daemons this machine runs, for a platform spread over several hosts (null: all of them).
   * `mprism start` without names, status, health, repair and the Prometheus targets follow it.
   */
  daemons: z
    .array(z.enum(['storage', 'replication', 'collector', 'brain'], { error: 'must be storage, replication, collector or brain (the simulator goes with the collector)' }))
    .min(1, 'must name at least one daemon (null: all)')
    .refine((list) => new Set(list).size === list.length, 'names a daemon twice')
    .nullable()
    .default(null),
  /** The local Prometheus `mprism start --with-prometheus` runs (or `enabled`: every start). */
  prometheus: z.strictObject({
    enabled: z.boolean(),
    host,
    port,
    /** How long Prometheus keeps samples (its --storage.tsdb.retention.time). */
    retention: duration,
  }).default({ enabled: false, host: '127.0.0.1', port: 9190, retention: '15d' }),
}).superRefine((c, ctx) => {
  for (const clash of derivedPortClashes(c)) {
    ctx.addIssue({ code: 'custom', path: [], message: `${clash}: move storage.port, nats.port, nats.monitorPort or nats.cluster.port to where the next ports are free` });
  }
});

export type ConfigShape = z.infer<typeof configSchema>;
/** Validated, frozen configuration plus where it came from. */
export type Config = Readonly<ConfigShape> & { readonly home: string; readonly file: string | null };
export type ClickHouseServerConfig = ConfigShape['clickhouse']['hot'];
export type ClickHouseReplicaConfig = NonNullable<ClickHouseServerConfig['replication']>['replicas'][number];
export type ZooKeeperConfig = ConfigShape['clickhouse']['zookeeper'];
