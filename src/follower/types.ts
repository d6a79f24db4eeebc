// What the follower tracker reports; the agent polls status() and reads facts() once per connection.

export interface FollowerConnOptions {
  /** Unix socket directory (starts with "/") or TCP host name/address. */
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  /** Give up connecting after this long (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Shown in pg_stat_activity (default "pg-prefaulter"). */
  applicationName?: string;
}

export interface FollowerUpstream {
  host: string;
  port: number;
  user: string | null;
  /** As PostgreSQL shows it in pg_stat_wal_receiver: the password is already obfuscated. */
  conninfo: string;
}

export interface FollowerStatus {
  inRecovery: boolean;
  /** Last replayed LSN; null on a primary (not in recovery). */
  replayLsn: bigint | null;
  /** Last received and flushed LSN; null on a primary or before streaming starts. */
  receiveLsn: bigint | null;
  replayTimestamp: Date | null;
  /** Receive timeline on a streaming standby (else last checkpoint's), insert timeline on a primary. */
  timeline: number | null;
  /** Replay is actually paused (PG 14+: state 'paused'; PG 13: a pause was requested). */
  replayPaused: boolean;
  /** From pg_stat_wal_receiver; null when no WAL receiver runs (or details are hidden: see privileges). */
  upstream: FollowerUpstream | null;
  walReceiverStatus: string | null;
}

export interface FollowerFacts {
  serverVersionNum: number;
  blockSize: number;
  /** XLOG_BLCKSZ (SHOW wal_block_size): the WAL page size, which reading starts aligned to and the decoder expects. */
  walBlockSize: number;
  segmentSize: number;
  dataDirectory: string;
  catalogVersion: number;
  /** shared_buffers in bytes: how much replay keeps in memory itself. */
  sharedBuffersBytes: number;
  /** Tablespace oid -> location (pg_tablespace_location); pg_default and pg_global are left out. */
  tablespaces: Map<number, string>;
}
