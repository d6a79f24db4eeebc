// The one table of configuration keys. Parsing, the --help text, the sample
// TOML file and the docs are all generated from it, so they cannot drift apart.
import { IO_METHODS, SSL_MODES, WAL_SOURCE_KINDS, type IoMethodSetting, type SslMode, type WalSourceKind } from '../options.ts';

export type KeyType = 'string' | 'int' | 'size' | 'duration' | 'enum';

export interface Config {
  pgdata: string;
  host: string;
  port: number;
  username: string;
  database: string;
  password: string;
  passwordFile: string;
  primaryConninfo: string;
  replicationUser: string;
  replicationPassword: string;
  replicationPasswordFile: string;
  sslmode: SslMode;
  sslrootcert: string;
  applicationName: string;
  replicationSlot: string;
  source: WalSourceKind;
  readaheadBytes: number;
  /** "auto": sized to the page cache our memory cgroup leaves (prefault/memory-budget.ts). */
  maxPagesAhead: number | 'auto';
  ioConcurrency: number;
  ioMethod: IoMethodSetting;
  maxOpenFiles: number;
  pollIntervalMs: number;
  statusIntervalMs: number;
  connectTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  metricsListen: string;
  logLevel: string;
}

export interface KeyDef {
  /** snake_case name used in the TOML file. */
  key: string;
  /** Property of Config it fills. */
  field: keyof Config;
  type: KeyType;
  /** Default as written in the sample file (sizes/durations as strings with units). */
  default: string | number;
  /** Long flag, `--kebab-case`. */
  flag: string;
  /** Optional short flag like `-D`. */
  short?: string;
  /** PG_PREFAULTER_UPPER_SNAKE environment variable. */
  env: string;
  /** libpq environment variable consulted below the config file, if any. */
  libpqEnv?: string;
  /** Allowed values for enum keys. */
  values?: readonly string[];
  /** Inclusive bounds for numeric keys (bytes for sizes, ms for durations). */
  min?: number;
  max?: number;
  /** An int key that also takes the word "auto". */
  auto?: boolean;
  /** Never printed or logged in clear. */
  secret?: boolean;
  /** A change on SIGHUP ends the session (connections, pipeline) and starts a new one; other keys apply live. */
  restartsSession?: boolean;
  description: string;
}

export { SSL_MODES };
export const SOURCES = WAL_SOURCE_KINDS;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

export const ENV_PREFIX = 'PG_PREFAULTER_';

type Def = Omit<KeyDef, 'flag' | 'env'>;

function def(d: Def): KeyDef {
  return { ...d, flag: `--${d.key.replace(/_/g, '-')}`, env: ENV_PREFIX + d.key.toUpperCase() };
}

export const KEYS: readonly KeyDef[] = [
  def({ key: 'pgdata', restartsSession: true, field: 'pgdata', type: 'string', default: '', short: '-D',
    description: "Follower data directory as mounted for the sidecar; \"\" = the follower's data_directory" }),
  def({ key: 'host', restartsSession: true, field: 'host', type: 'string', default: '/var/run/postgresql', short: '-H', libpqEnv: 'PGHOST',
    description: 'Follower socket directory or host name' }),
  def({ key: 'port', restartsSession: true, field: 'port', type: 'int', default: 5432, short: '-p', libpqEnv: 'PGPORT', min: 1, max: 65535,
    description: 'Follower port' }),
  def({ key: 'username', restartsSession: true, field: 'username', type: 'string', default: 'postgres', short: '-U', libpqEnv: 'PGUSER',
    description: 'User for the follower connection' }),
  def({ key: 'database', restartsSession: true, field: 'database', type: 'string', default: 'postgres', short: '-d', libpqEnv: 'PGDATABASE',
    description: 'Database for the follower connection' }),
  def({ key: 'password', restartsSession: true, field: 'password', type: 'string', default: '', libpqEnv: 'PGPASSWORD', secret: true,
    description: 'Password for the follower connection (PGPASSFILE / ~/.pgpass are consulted when empty)' }),
  def({ key: 'password_file', restartsSession: true, field: 'passwordFile', type: 'string', default: '',
    description: 'File holding the follower password, e.g. a mounted secret (trailing newline stripped)' }),
  def({ key: 'primary_conninfo', restartsSession: true, field: 'primaryConninfo', type: 'string', default: '', secret: true,
    description: "libpq conninfo of the upstream; \"\" = the follower's own primary_conninfo and pg_stat_wal_receiver" }),
  def({ key: 'replication_user', restartsSession: true, field: 'replicationUser', type: 'string', default: '',
    description: 'User for the replication connection; "" = the user in the upstream conninfo' }),
  def({ key: 'replication_password', restartsSession: true, field: 'replicationPassword', type: 'string', default: '', secret: true,
    description: 'Password for the replication connection' }),
  def({ key: 'replication_password_file', restartsSession: true, field: 'replicationPasswordFile', type: 'string', default: '',
    description: 'File holding the replication password (trailing newline stripped)' }),
  def({ key: 'sslmode', restartsSession: true, field: 'sslmode', type: 'enum', default: 'prefer', values: SSL_MODES, libpqEnv: 'PGSSLMODE',
    description: 'SSL mode for connections' }),
  def({ key: 'sslrootcert', restartsSession: true, field: 'sslrootcert', type: 'string', default: '', libpqEnv: 'PGSSLROOTCERT',
    description: 'CA certificate file for verify-ca / verify-full' }),
  def({ key: 'application_name', restartsSession: true, field: 'applicationName', type: 'string', default: 'pg_prefaulter',
    description: 'application_name reported to PostgreSQL' }),
  def({ key: 'replication_slot', restartsSession: true, field: 'replicationSlot', type: 'string', default: '',
    description: 'Physical replication slot to stream from; "" = none' }),
  def({ key: 'source', restartsSession: true, field: 'source', type: 'enum', default: 'stream', values: SOURCES,
    description: 'Where WAL comes from: "stream" (own walsender connection, falls back to the local pg_wal when the '
      + 'upstream no longer has the WAL) or "local" (the follower\'s pg_wal only; needs no walsender)' }),
  def({ key: 'readahead_bytes', restartsSession: true, field: 'readaheadBytes', type: 'size', default: '32MiB', min: 8192,
    description: 'How far ahead of replay to read WAL' }),
  def({ key: 'max_pages_ahead', restartsSession: true, field: 'maxPagesAhead', type: 'int', default: 'auto', min: 1, auto: true,
    description: 'Maximum number of distinct pages prefaulted ahead of replay; "auto" = what the page cache our memory '
      + 'cgroup (or the machine) leaves can hold until replay reads them, at most 16384' }),
  def({ key: 'io_method', field: 'ioMethod', type: 'enum', default: 'auto', values: IO_METHODS,
    description: 'How pages are brought into the page cache: "willneed" asks the kernel to read them (posix_fadvise, as '
      + 'PostgreSQL\'s recovery_prefetch does: one syscall per page, no thread waits), "pread" reads each one on a '
      + 'libuv thread (io_concurrency at a time), "auto" = willneed on Linux, else pread' }),
  def({ key: 'io_concurrency', field: 'ioConcurrency', type: 'int', default: 64, min: 1, max: 1024,
    description: 'Concurrent page reads (io_method = "pread"; with "willneed", concurrent file opens)' }),
  def({ key: 'max_open_files', restartsSession: true, field: 'maxOpenFiles', type: 'int', default: 0, min: 0,
    description: 'Relation file handles kept open; 0 = derived from RLIMIT_NOFILE' }),
  def({ key: 'poll_interval', field: 'pollIntervalMs', type: 'duration', default: '100ms', min: 1,
    description: 'How often to poll the follower replay LSN' }),
  def({ key: 'status_interval', restartsSession: true, field: 'statusIntervalMs', type: 'duration', default: '10s', min: 1,
    description: 'How often to send standby status updates to the upstream' }),
  def({ key: 'connect_timeout', restartsSession: true, field: 'connectTimeoutMs', type: 'duration', default: '10s', min: 1,
    description: 'Timeout for establishing a connection' }),
  def({ key: 'reconnect_min', field: 'reconnectMinMs', type: 'duration', default: '500ms', min: 1,
    description: 'First reconnect delay (doubles on each failure)' }),
  def({ key: 'reconnect_max', field: 'reconnectMaxMs', type: 'duration', default: '30s', min: 1,
    description: 'Longest reconnect delay' }),
  def({ key: 'metrics_listen', field: 'metricsListen', type: 'string', default: '0.0.0.0:9441',
    description: 'host:port for /metrics, /healthz, /readyz, /status; "" disables' }),
  def({ key: 'log_level', field: 'logLevel', type: 'enum', default: 'info', values: LOG_LEVELS,
    description: 'Log level' }),
];

/** Config fields whose change on reload restarts the agent's session. */
export const SESSION_FIELDS: readonly (keyof Config)[] = KEYS.filter((k) => k.restartsSession).map((k) => k.field);

export const KEYS_BY_NAME: ReadonlyMap<string, KeyDef> = new Map(KEYS.map((k) => [k.key, k]));
/** Env var naming the config file (same role as --config). */
export const CONFIG_ENV = ENV_PREFIX + 'CONFIG';
export const DEFAULT_CONFIG_FILE = 'pg-prefaulter.toml';
/**
 * PG_PREFAULTER_* variables that belong to other commands (`status`): not
 * settings, but not errors either, since one container env serves every command.
 */
export const OTHER_COMMAND_ENVS: readonly string[] = [ENV_PREFIX + 'STATUS_URL'];
