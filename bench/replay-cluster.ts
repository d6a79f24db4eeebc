// The benchmark's cluster: a primary and a streaming standby from the test
// harness, a table several times the standby's shared_buffers, and a seeded
// random-update burst generated on the primary.
import { createCluster, sleep, type Cluster, type PgServer } from '../test/harness/index.ts';
import type { BenchOptions } from './replay-args.ts';
import type { SlowIo } from './replay-slowio.ts';

export const TABLE = 'bench_replay';

export function clusterSettings(opts: BenchOptions): { primaryConf: Record<string, string | number>; standbyConf: Record<string, string | number> } {
  const common = {
    // No checkpoint (so no restartpoint) in the middle of a load or burst.
    max_wal_size: '64GB',
    checkpoint_timeout: '1h',
    // The standby is stopped while the burst is written; the primary keeps it.
    wal_keep_size: '8GB',
    autovacuum: 'off',
  };
  return {
    primaryConf: { ...common, full_page_writes: opts.fpw ? 'on' : 'off', shared_buffers: '512MB', max_connections: 40 },
    standbyConf: { ...common, shared_buffers: opts.standbySharedBuffers, hot_standby: 'on' },
  };
}

export async function createBenchCluster(version: number, opts: BenchOptions): Promise<Cluster> {
  const { primaryConf, standbyConf } = clusterSettings(opts);
  return createCluster(version, { name: 'bench-replay', primaryConf, standbyConf });
}

// ~440-byte rows at fillfactor 80: about 14 rows a page, so the table is
// mostly pages (what replay reads) and its index stays small.
const PAD_REPEAT = 12; // 12 x md5 = 384 characters
const ROWS_PER_MB = 14 * 128;

/** What a benchmark mode's runs share: the options, the cluster and table, the storage model, where to write. */
export interface ModeContext {
  opts: BenchOptions;
  cluster: Cluster;
  table: LoadedTable;
  slowio: SlowIo;
  statsDir: string;
  logDir: string;
  repoRoot: string;
  log: (msg: string) => void;
}

export interface LoadedTable {
  rows: number;
  tableBytes: number;
  indexBytes: number;
  /** Relation file paths relative to the data directory (main forks; segments are path.N). */
  relationPaths: string[];
}

/** Creates and fills the table on the primary, waits until the standby has replayed it. */
export async function loadTable(cluster: Cluster, sizeMb: number, progress: (msg: string) => void): Promise<LoadedTable> {
  const { primary, standby } = cluster;
  const rows = sizeMb * ROWS_PER_MB;
  await primary.exec(`
    drop table if exists ${TABLE};
    create table ${TABLE} (id int primary key, v int not null, pad text not null)
      with (fillfactor = 80, autovacuum_enabled = off);
  `);
  const chunk = 500_000;
  for (let from = 1; from <= rows; from += chunk) {
    const to = Math.min(rows, from + chunk - 1);
    await primary.query(`insert into ${TABLE} select g, 0, repeat(md5(g::text), ${PAD_REPEAT}) from generate_series($1::int, $2::int) g`, [from, to]);
    progress(`loaded ${to}/${rows} rows`);
  }
  // Freeze and set hint bits now, so bursts do not carry that work.
  await primary.exec(`vacuum (freeze, analyze) ${TABLE}`);
  await primary.exec('checkpoint');
  const lsn = await primary.currentLsn();
  await standby.waitForReplay(lsn, 3_600_000);
  const tableBytes = Number(await primary.scalar(`select pg_relation_size('${TABLE}')`));
  const indexBytes = Number(await primary.scalar(`select pg_relation_size('${TABLE}_pkey')`));
  const relationPaths = [
    String(await primary.scalar(`select pg_relation_filepath('${TABLE}')`)),
    String(await primary.scalar(`select pg_relation_filepath('${TABLE}_pkey')`)),
  ];
  return { rows, tableBytes, indexBytes, relationPaths };
}

export interface Burst {
  startLsn: string;
  endLsn: string;
  walBytes: number;
}

/**
 * The write burst: `updates` single-row updates of random ids (same ids and
 * order for the same seed), committed every `perCommit`, like OLTP traffic.
 */
export async function runBurst(primary: PgServer, rows: number, opts: BenchOptions): Promise<Burst> {
  const startLsn = await primary.scalar<string>('select pg_current_wal_lsn()::text');
  // setseed takes a value in [-1, 1].
  const seed = (opts.seed % 1_000_000) / 1_000_000;
  await primary.exec(`
    do $$
    declare
      target int;
    begin
      perform setseed(${seed});
      for i in 1..${opts.updates} loop
        -- A variable, not random() in the WHERE clause: that would be
        -- evaluated per row (a sequential scan updating random rows).
        target := 1 + floor(random() * ${rows})::int;
        update ${TABLE} set v = v + 1 where id = target;
        if i % ${opts.perCommit} = 0 then commit; end if;
      end loop;
    end $$;
  `);
  const endLsn = await primary.scalar<string>('select pg_current_wal_lsn()::text');
  const walBytes = Number(await primary.scalar('select pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)', [endLsn, startLsn]));
  return { startLsn, endLsn, walBytes };
}

/**
 * Leaves the standby stopped with a restartpoint at the primary's current
 * position, so its next start replays exactly what the primary writes next.
 */
export async function parkStandby(cluster: Cluster): Promise<void> {
  const { primary, standby } = cluster;
  await primary.exec('checkpoint');
  const lsn = await primary.currentLsn();
  await standby.waitForReplay(lsn, 600_000);
  await standby.exec('checkpoint'); // a restartpoint at the checkpoint just replayed
  await standby.stop('fast'); // and the shutdown restartpoint
}

/** Replay position of the standby, or null while it does not answer. */
export async function replayReached(standby: PgServer, lsn: string): Promise<boolean> {
  return standby.scalar<boolean>('select coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)', [lsn]);
}

/**
 * slowio rewrites a process's counter file only when that process reads
 * again, at least 200 ms after its last rewrite. After a timed replay, make
 * replay (and a prefaulting sidecar) read once more: update one row on the
 * primary and wait until the standby has replayed it. Returns the pid of the
 * standby's startup process, whose counters are the replay's.
 */
export async function flushSlowIoCounters(cluster: Cluster, rows: number): Promise<number | null> {
  const { primary, standby } = cluster;
  await sleep(250);
  await primary.query(`update ${TABLE} set v = v where id = $1`, [rows]);
  const lsn = await primary.scalar<string>('select pg_current_wal_lsn()::text');
  await standby.waitForReplay(lsn, 60_000);
  await sleep(300); // the sidecar reads on its own schedule
  const pid = await standby.query<{ pid: number }>(`select pid from pg_stat_activity where backend_type = 'startup'`);
  return pid[0] ? Number(pid[0].pid) : null;
}
