// Typed failures of the replication client. Every message says what failed and
// what the operator should do; none ever contains a password.

export type ReplicationErrorCode =
  | 'CONNECT_FAILED'
  | 'TIMEOUT'
  | 'AUTH_FAILED'
  | 'NOT_REPLICATION_ROLE'
  | 'TOO_MANY_WALSENDERS'
  | 'WAL_REMOVED'
  | 'TLS_REQUIRED'
  | 'TLS_FAILED'
  | 'PRIMARY_IN_RECOVERY'
  | 'SERVER_ERROR'
  | 'PROTOCOL'
  | 'CLOSED';

// Codes worth retrying with backoff: the condition can clear by itself.
const RETRYABLE: ReadonlySet<ReplicationErrorCode> = new Set<ReplicationErrorCode>([
  'CONNECT_FAILED',
  'TIMEOUT',
  'TOO_MANY_WALSENDERS',
  'PRIMARY_IN_RECOVERY',
  'CLOSED',
]);

export class ReplicationError extends Error {
  readonly code: ReplicationErrorCode;
  readonly sqlstate?: string;
  readonly retryable: boolean;

  constructor(code: ReplicationErrorCode, message: string, opts: { sqlstate?: string; retryable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ReplicationError';
    this.code = code;
    if (opts.sqlstate !== undefined) this.sqlstate = opts.sqlstate;
    this.retryable = opts.retryable ?? RETRYABLE.has(code);
  }
}

/** The fields of a server ErrorResponse that matter for classification. */
export interface ServerErrorFields {
  message: string;
  code?: string | undefined; // SQLSTATE
  detail?: string | undefined;
  hint?: string | undefined;
  severity?: string | undefined;
}

/** Where the error happened, to phrase the advice. */
export interface ErrorContext {
  user: string;
  target: string; // host:port or socket path, for messages
  tls: boolean;
}

/**
 * Maps a server ErrorResponse to a typed error. The server's own text is kept
 * (it names the segment, the setting, ...) and followed by what to do.
 */
export function classifyServerError(f: ServerErrorFields, ctx: ErrorContext): ReplicationError {
  const server = `${f.message}${f.detail ? ` (${f.detail})` : ''}`;
  const at = `server ${ctx.target}`;
  const mk = (code: ReplicationErrorCode, advice: string, retryable?: boolean): ReplicationError =>
    new ReplicationError(code, `${at}: ${server}: ${advice}`, { sqlstate: f.code, ...(retryable === undefined ? {} : { retryable }) });
  const msg = f.message;
  // The server raises this with errcode_for_file_access(), so the SQLSTATE
  // depends on a stale errno; the text is what identifies it.
  if (/requested WAL segment .* has already been removed/.test(msg)) {
    return mk('WAL_REMOVED', 'the server no longer has that WAL; restart streaming from the current position (IDENTIFY_SYSTEM), or raise wal_keep_size / use a replication slot so WAL is kept until the sidecar reads it');
  }
  switch (f.code) {
    case '28P01':
      return mk('AUTH_FAILED', `check the password for user "${ctx.user}" (password=, PGPASSWORD or ~/.pgpass)`);
    case '28000':
      if (/superuser or replication role|replication privilege|permission denied to start WAL sender/i.test(msg)) {
        return mk('NOT_REPLICATION_ROLE', `grant REPLICATION to the role: ALTER ROLE "${ctx.user}" REPLICATION`);
      }
      if (/no pg_hba\.conf entry/.test(msg)) {
        return mk('AUTH_FAILED', `add a "host replication ${ctx.user} <address> <method>" line to pg_hba.conf on the server and reload it (the database column must say "replication")`);
      }
      return mk('AUTH_FAILED', `check the credentials and pg_hba.conf for user "${ctx.user}"`);
    case '42501':
      return mk('NOT_REPLICATION_ROLE', `grant REPLICATION to the role: ALTER ROLE "${ctx.user}" REPLICATION`);
    case '53300':
      if (/max_wal_senders/.test(msg)) {
        return mk('TOO_MANY_WALSENDERS', 'raise max_wal_senders on the server (each pg-prefaulter uses one walsender) or stop an unused replication client', true);
      }
      return mk('SERVER_ERROR', 'the server is out of connection slots; raise max_connections or retry later', true);
    case '57P03':
      return mk('CONNECT_FAILED', 'the server is starting up or shutting down; retry shortly', true);
    case '57P01':
    case '57P02':
    case '57P05':
      return mk('CLOSED', 'the server ended the session (shutdown or administrator command); reconnect', true);
    case '55000':
      if (/recovery is in progress|in recovery/i.test(msg)) {
        return mk('PRIMARY_IN_RECOVERY', 'the server is in recovery and cannot do this; point the sidecar at the primary or wait for promotion', true);
      }
      break;
    case '3D000':
      return mk('CONNECT_FAILED', 'the database does not exist; fix dbname (physical replication needs no database)', false);
    default:
      break;
  }
  if (/requested starting point .* is ahead of the WAL flush position/.test(msg)) {
    return mk('SERVER_ERROR', 'the requested start LSN is beyond what the server has; start from IDENTIFY_SYSTEM xlogpos or earlier', true);
  }
  if (/requested timeline \d+ is not in this server's history|requested starting point .* on timeline/.test(msg)) {
    return mk('SERVER_ERROR', 'the requested timeline does not match the server; re-read IDENTIFY_SYSTEM and TIMELINE_HISTORY and restart', true);
  }
  return mk('SERVER_ERROR', 'see the server log for details', false);
}
