// The follower tracker: one small connection to the standby the prefaulter
// serves, polled for its replay position and read once for its layout facts.
//
// Privileges: no superuser needed. A role with pg_monitor suffices:
//  - pg_read_all_stats (in pg_monitor) shows pg_stat_wal_receiver's details
//    (without it only the pid is visible, so upstream/status come back null);
//  - pg_read_all_settings (in pg_monitor) lets facts() read data_directory.
// Everything else (pg_last_wal_*_lsn, pg_is_wal_replay_paused /
// pg_get_wal_replay_pause_state, pg_control_system, pg_control_checkpoint,
// pg_tablespace_location) is executable by PUBLIC by default.
import postgres from 'postgres';
import { parseConninfo } from '../replication/conninfo.ts';
import { parseLsnOrNull } from '../lsn.ts';
import { FollowerConnectError } from './connect-error.ts';
import type { FollowerConnOptions, FollowerFacts, FollowerStatus, FollowerUpstream } from './types.ts';

interface StatusRow {
  in_recovery: boolean;
  replay_lsn: string | null;
  receive_lsn: string | null;
  replay_ts: Date | null;
  paused: boolean;
  receiver_tli: number | null;
  checkpoint_tli: number | null;
  insert_walfile: string | null;
  wr_status: string | null;
  sender_host: string | null;
  sender_port: number | null;
  wr_conninfo: string | null;
}

interface FactsRow {
  version_num: number;
  block_size: number;
  wal_block_size: number;
  segment_size: string;
  data_directory: string;
  catalog_version: number;
  shared_buffers: string;
}

// One statement, one round trip. CASE guards the functions that raise an
// error outside (or inside) recovery; they are volatile, so never pre-folded.
function statusQuery(serverVersionNum: number): string {
  const paused =
    serverVersionNum >= 140000 ? `pg_get_wal_replay_pause_state() = 'paused'` : 'pg_is_wal_replay_paused()';
  return `
select pg_is_in_recovery() as in_recovery,
       case when pg_is_in_recovery() then pg_last_wal_replay_lsn()::text end as replay_lsn,
       case when pg_is_in_recovery() then pg_last_wal_receive_lsn()::text end as receive_lsn,
       pg_last_xact_replay_timestamp() as replay_ts,
       case when pg_is_in_recovery() then ${paused} else false end as paused,
       w.received_tli::int as receiver_tli,
       -- pg_control_checkpoint() reads pg_control from disk: only when no WAL receiver tells the timeline
       case when pg_is_in_recovery() and w.received_tli is null then (select timeline_id from pg_control_checkpoint())::int end as checkpoint_tli,
       case when pg_is_in_recovery() then null else pg_walfile_name(pg_current_wal_lsn()) end as insert_walfile,
       w.status as wr_status, w.sender_host, w.sender_port::int as sender_port, w.conninfo as wr_conninfo
  from (select 1) as one left join pg_stat_wal_receiver as w on true`;
}

const FACTS_QUERY = `
select current_setting('server_version_num')::int as version_num,
       current_setting('block_size')::int as block_size,
       current_setting('wal_block_size')::int as wal_block_size,
       (select setting from pg_settings where name = 'wal_segment_size') as segment_size,
       current_setting('data_directory') as data_directory,
       (select catalog_version_no from pg_control_system())::int as catalog_version,
       pg_size_bytes(current_setting('shared_buffers'))::text as shared_buffers`;

const TABLESPACES_QUERY = `
select oid::int as oid, pg_tablespace_location(oid) as location
  from pg_tablespace where spcname not in ('pg_default', 'pg_global')`;

function describe(opts: FollowerConnOptions): string {
  const where = opts.host.startsWith('/') ? `socket ${opts.host}/.s.PGSQL.${opts.port}` : `${opts.host}:${opts.port}`;
  return `${where} as user "${opts.user}" (database "${opts.database}")`;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The follower could not be reached or refused us. `code` is the SQLSTATE or
 * the socket errno (ENOENT, ECONNREFUSED, ...) when known; `startingUp` means
 * PostgreSQL is up but not yet accepting connections (57P03), so an early
 * retry is cheap and useful.
 */
export { FollowerConnectError };

export class Follower {
  readonly serverVersionNum: number;
  private readonly sql: postgres.Sql;
  private readonly where: string;
  private readonly statusSql: string;

  /** Resolves when the connection closes (the server went away): a poll waiting on a timer can ask at once. */
  readonly closed: Promise<void>;

  private constructor(sql: postgres.Sql, serverVersionNum: number, where: string, closed: Promise<void>) {
    this.sql = sql;
    this.closed = closed;
    this.serverVersionNum = serverVersionNum;
    this.where = where;
    this.statusSql = statusQuery(serverVersionNum);
  }

  /** Connect and check the server answers; throws a descriptive error if not (the caller retries). */
  static async connect(opts: FollowerConnOptions): Promise<Follower> {
    const where = describe(opts);
    let onClose = (): void => {};
    const closed = new Promise<void>((resolve) => (onClose = resolve));
    const sql = postgres({
      host: opts.host,
      port: opts.port,
      user: opts.user,
      database: opts.database,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      max: 1,
      connect_timeout: Math.max(1, Math.ceil((opts.connectTimeoutMs ?? 5000) / 1000)),
      onnotice: () => {},
      onclose: () => onClose(),
      connection: { application_name: opts.applicationName ?? 'pg-prefaulter' },
    });
    try {
      const rows = await sql.unsafe<{ v: number }[]>(`select current_setting('server_version_num')::int as v`);
      const version = rows[0]?.v;
      if (typeof version !== 'number') throw new Error('server did not report server_version_num');
      return new Follower(sql, version, where, closed);
    } catch (e) {
      await sql.end({ timeout: 1 }).catch(() => {});
      const code = (e as { code?: unknown }).code;
      throw new FollowerConnectError(
        `cannot connect to the follower at ${where}: ${message(e)}; check host/port/user and pg_hba.conf`,
        typeof code === 'string' ? code : undefined,
      );
    }
  }

  /** Recovery state and positions in one round trip (cheap enough to poll every 100 ms). */
  async status(): Promise<FollowerStatus> {
    let row: StatusRow | undefined;
    try {
      row = (await this.sql.unsafe<StatusRow[]>(this.statusSql))[0];
    } catch (e) {
      throw new Error(`follower status query failed at ${this.where}: ${message(e)}`);
    }
    if (!row) throw new Error(`follower status query returned no row at ${this.where}`);
    const timeline = row.in_recovery
      ? (row.receiver_tli ?? row.checkpoint_tli)
      : row.insert_walfile
        ? Number.parseInt(row.insert_walfile.slice(0, 8), 16)
        : null;
    return {
      inRecovery: row.in_recovery,
      replayLsn: parseLsnOrNull(row.replay_lsn),
      receiveLsn: parseLsnOrNull(row.receive_lsn),
      replayTimestamp: row.replay_ts,
      timeline,
      replayPaused: row.paused,
      upstream: upstreamOf(row),
      walReceiverStatus: row.wr_status,
    };
  }

  /** Layout facts the prefaulter needs to map blocks to files. Needs pg_read_all_settings for data_directory. */
  async facts(): Promise<FollowerFacts> {
    let row: FactsRow | undefined;
    let spcs: { oid: number; location: string }[];
    try {
      row = (await this.sql.unsafe<FactsRow[]>(FACTS_QUERY))[0];
      spcs = await this.sql.unsafe<{ oid: number; location: string }[]>(TABLESPACES_QUERY);
    } catch (e) {
      throw new Error(
        `reading follower facts failed at ${this.where}: ${message(e)}; the role needs pg_monitor (or pg_read_all_settings) to read data_directory`,
      );
    }
    if (!row) throw new Error(`follower facts query returned no row at ${this.where}`);
    return {
      serverVersionNum: row.version_num,
      blockSize: row.block_size,
      walBlockSize: row.wal_block_size,
      segmentSize: Number(row.segment_size),
      dataDirectory: row.data_directory,
      catalogVersion: row.catalog_version,
      sharedBuffersBytes: Number(row.shared_buffers),
      tablespaces: new Map(spcs.map((s) => [s.oid, s.location])),
    };
  }

  /**
   * The follower's primary_conninfo setting, or null (unset, or this role may
   * not read it: it needs pg_read_all_settings, part of pg_monitor). Unlike
   * pg_stat_wal_receiver it keeps the password and is there before the WAL
   * receiver has connected. Never log it.
   */
  async primaryConninfo(): Promise<string | null> {
    try {
      const rows = await this.sql.unsafe<{ v: string | null }[]>(`select current_setting('primary_conninfo', true) as v`);
      return rows[0]?.v || null;
    } catch {
      return null;
    }
  }

  /**
   * PostgreSQL's own recovery prefetcher (15+): the recovery_prefetch setting
   * ("try", the default, is on wherever posix_fadvise exists) and
   * maintenance_io_concurrency; null before 15 or when it cannot be read.
   */
  async builtinPrefetch(): Promise<{ recoveryPrefetch: string; maintenanceIoConcurrency: number } | null> {
    try {
      const rows = await this.sql.unsafe<{ rp: string | null; mic: string | null }[]>(
        `select current_setting('recovery_prefetch', true) as rp, current_setting('maintenance_io_concurrency', true) as mic`,
      );
      const r = rows[0];
      if (!r || r.rp === null) return null;
      return { recoveryPrefetch: r.rp, maintenanceIoConcurrency: Number(r.mic ?? 0) };
    } catch {
      return null;
    }
  }

  /** Ends the connection; waits up to timeoutS for queries in flight (0: a connection known dead, drop it now). */
  async close(timeoutS = 2): Promise<void> {
    await this.sql.end({ timeout: timeoutS });
  }
}

function upstreamOf(row: StatusRow): FollowerUpstream | null {
  if (row.sender_host === null && row.wr_conninfo === null) return null;
  const info = conninfoFields(row.wr_conninfo ?? '');
  return {
    host: row.sender_host ?? info.host ?? '',
    port: row.sender_port ?? info.port ?? 5432,
    user: info.user ?? null,
    conninfo: row.wr_conninfo ?? '',
  };
}

// The shown conninfo is informational: a value the replication client would
// reject must not break status polling.
function conninfoFields(conninfo: string): { host?: string; port?: number; user?: string } {
  try {
    return parseConninfo(conninfo);
  } catch {
    return {};
  }
}
