/** One row of `mprism status` (stable --json shape). */
export interface ProcessRow {
  name: string;
  /** monitoring: the local Prometheus of `start --with-prometheus`, listed only while it runs. */
  kind: 'supervisor' | 'daemon' | 'infra' | 'monitoring';
  /** running | starting | backoff | errored | stopping | stopped | external | dead (died without `mprism stop`) | unresponsive (supervisor) */
  state: string;
  pid: number | null;
  uptimeSeconds: number | null;
  restarts: number;
  cpuPercent: number | null;
  rssBytes: number | null;
  port: number | null;
  /** Daemons: seconds since the last heartbeat in the Redis registry; null when absent (expired, or Redis down). */
  heartbeatAgeSeconds: number | null;
  /** Why the state is what it is, when that is not obvious (last exit, error). */
  detail: string | null;
}

export interface StatusReport {
  home: string;
  processes: ProcessRow[];
  /** The brain holding the lease (the one that runs tasks); null when none does or Redis is not reachable. */
  brainLeader: { brainId: string; fence: number; expiresInMs: number } | null;
  /** Named leases held now (replication's one per table: `replication:<table>`), with the holder (`<host>:<port>`); null when Redis is not reachable. */
  leases: { name: string; holderId: string; fence: number; expiresInMs: number }[] | null;
}
