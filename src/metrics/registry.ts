// Prometheus instruments of the agent, in their own Registry (never the global
// one, so tests and the demo can run several agents in one process).
// Names are an interface: dashboards and alerts in deploy/ use them.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from '../version.ts';
// Label values come from the lists their owners declare (one declaration each).
import { RUNNING_STATES, ROLES, type Role } from '../agent/states.ts';
import { SKIP_REASONS, type SkipReason } from '../prefault/skip.ts';
import { IO_METHODS, type IoMethod } from '../options.ts';
import { WAL_SOURCE_KINDS, type WalSourceKind } from '../wal-source/source.ts';

/** pg_prefaulter_state labels: every state of a running agent. */
export const AGENT_STATES = RUNNING_STATES;
export type AgentState = (typeof AGENT_STATES)[number];
export { ROLES, SKIP_REASONS, type Role, type SkipReason };
export const RECONNECT_TARGETS = ['follower', 'upstream'] as const;
export const WAL_SOURCES = WAL_SOURCE_KINDS;
export type WalSource = WalSourceKind;
/** io methods as run (auto resolves to one of these). */
const IO_METHODS_RUN: readonly IoMethod[] = IO_METHODS.filter((m): m is IoMethod => m !== 'auto');

/** pread latency buckets, 50 us .. 100 ms (page cache hit .. slow network disk). */
export const PREAD_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/** Every pg_prefaulter_* metric family the agent exports. */
export const METRIC_NAMES: string[] = [
  'pg_prefaulter_info',
  'pg_prefaulter_state',
  'pg_prefaulter_role',
  'pg_prefaulter_timeline',
  'pg_prefaulter_replay_lag_bytes',
  'pg_prefaulter_replay_lag_seconds',
  'pg_prefaulter_follower_replay_lsn_bytes',
  'pg_prefaulter_follower_receive_lsn_bytes',
  'pg_prefaulter_stream_lsn_bytes',
  'pg_prefaulter_prefault_ahead_bytes',
  'pg_prefaulter_prefault_ahead_pages',
  'pg_prefaulter_io_method',
  'pg_prefaulter_prefaults_issued_total',
  'pg_prefaulter_prefaults_completed_total',
  'pg_prefaulter_prefaults_skipped_total',
  'pg_prefaulter_read_errors_total',
  'pg_prefaulter_pread_duration_seconds',
  'pg_prefaulter_reads_in_flight',
  'pg_prefaulter_decode_errors_total',
  'pg_prefaulter_wal_records_total',
  'pg_prefaulter_wal_bytes_total',
  'pg_prefaulter_file_handle_cache_hits_total',
  'pg_prefaulter_file_handle_cache_misses_total',
  'pg_prefaulter_file_handles_open',
  'pg_prefaulter_reconnects_total',
  'pg_prefaulter_upstream_connected',
  'pg_prefaulter_wal_source',
  'pg_prefaulter_recovery_progress_visible',
  'pg_prefaulter_metrics_collect_errors_total',
  'pg_prefaulter_max_pages_ahead',
  'pg_prefaulter_memory_limit_bytes',
  'pg_prefaulter_memory_usage_bytes',
  'pg_prefaulter_memory_page_cache_bytes',
  'pg_prefaulter_pages_fetched_for_replay_total',
  'pg_prefaulter_prefaults_already_resident_total',
  'pg_prefaulter_replay_wait_saved_seconds_total',
  'pg_prefaulter_replay_rate_bytes_per_second',
  'pg_prefaulter_catch_up_seconds',
];

type Labels<L extends string> = Partial<Record<L, string | number>>;
type CollectHook = () => void | Promise<void>;

export interface AgentMetricsOptions {
  /** Include prom-client's process_* / nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
  /** Reported in pg_prefaulter_info{version}; default the package version. */
  version?: string;
}

export class AgentMetrics {
  readonly registry = new Registry();

  readonly info: Gauge<'version'>;
  readonly state: Gauge<'state'>;
  readonly role: Gauge<'role'>;
  readonly timeline: Gauge;
  readonly replayLagBytes: Gauge;
  readonly replayLagSeconds: Gauge;
  readonly followerReplayLsn: Gauge;
  readonly followerReceiveLsn: Gauge;
  readonly streamLsn: Gauge;
  readonly prefaultAheadBytes: Gauge;
  readonly prefaultAheadPages: Gauge;
  readonly ioMethod: Gauge<'method'>;
  readonly prefaultsIssued: Counter;
  readonly prefaultsCompleted: Counter;
  readonly prefaultsSkipped: Counter<'reason'>;
  readonly readErrors: Counter;
  readonly preadDuration: Histogram;
  readonly readsInFlight: Gauge;
  readonly decodeErrors: Counter;
  readonly walRecords: Counter<'rmgr'>;
  readonly walBytes: Counter<'rmgr'>;
  readonly fileHandleCacheHits: Counter;
  readonly fileHandleCacheMisses: Counter;
  readonly fileHandlesOpen: Gauge;
  readonly reconnects: Counter<'target'>;
  readonly upstreamConnected: Gauge;
  readonly walSource: Gauge<'source'>;
  readonly recoveryProgressVisible: Gauge;
  readonly collectErrors: Counter;
  readonly maxPagesAhead: Gauge;
  readonly memoryLimit: Gauge;
  readonly memoryUsage: Gauge;
  readonly memoryPageCache: Gauge;
  readonly pagesFetchedForReplay: Counter;
  readonly prefaultsAlreadyResident: Counter;
  readonly replayWaitSaved: Counter;
  readonly replayRate: Gauge;
  readonly catchUpSeconds: Gauge;

  private readonly hooks: CollectHook[] = [];
  /** Last absolute value fed per counter and label set (see setCounter). */
  private readonly fed = new Map<Counter<string>, Map<string, number>>();

  constructor(opts: AgentMetricsOptions = {}) {
    const registers = [this.registry];
    const gauge = <L extends string = string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const counter = <L extends string = string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Counter<L>({ name, help, labelNames, registers });

    this.info = gauge('pg_prefaulter_info', 'pg-prefaulter build information; always 1', ['version']);
    this.state = gauge('pg_prefaulter_state', 'Agent state: 1 for the current state, 0 for the others', ['state']);
    this.role = gauge('pg_prefaulter_role', 'Role of the local PostgreSQL: 1 for the current role, 0 for the others', ['role']);
    this.timeline = gauge('pg_prefaulter_timeline', 'Timeline the follower is replaying');
    this.replayLagBytes = gauge('pg_prefaulter_replay_lag_bytes', 'Upstream WAL end known to the agent minus the follower replay LSN, in bytes');
    this.replayLagSeconds = gauge('pg_prefaulter_replay_lag_seconds', 'Now minus the timestamp of the last replayed transaction; 0 when caught up');
    this.followerReplayLsn = gauge('pg_prefaulter_follower_replay_lsn_bytes', 'Follower replay LSN as a byte position');
    this.followerReceiveLsn = gauge('pg_prefaulter_follower_receive_lsn_bytes', 'Follower receive (flush) LSN as a byte position');
    this.streamLsn = gauge('pg_prefaulter_stream_lsn_bytes', 'End of the WAL the agent has read, as a byte position');
    this.prefaultAheadBytes = gauge('pg_prefaulter_prefault_ahead_bytes', 'How far the prefaulter is ahead of replay, in WAL bytes');
    this.prefaultAheadPages = gauge('pg_prefaulter_prefault_ahead_pages', 'Pages prefaulted ahead of replay and not yet replayed');
    this.ioMethod = gauge('pg_prefaulter_io_method', 'How pages are prefaulted: 1 for the method in use (willneed: posix_fadvise hints; pread: reads), 0 for the other', ['method']);
    this.prefaultsIssued = counter('pg_prefaulter_prefaults_issued_total', 'Page prefaults issued (hints given or reads started)');
    this.prefaultsCompleted = counter('pg_prefaulter_prefaults_completed_total', 'Page prefaults done (hints the kernel accepted or reads finished)');
    this.prefaultsSkipped = counter('pg_prefaulter_prefaults_skipped_total', 'Block references not read, by reason', ['reason']);
    this.readErrors = counter('pg_prefaulter_read_errors_total', 'Page reads that failed (other than missing files)');
    this.preadDuration = new Histogram({
      name: 'pg_prefaulter_pread_duration_seconds', help: 'Duration of one page read (io_method pread only)', buckets: PREAD_BUCKETS, registers,
    });
    this.readsInFlight = gauge('pg_prefaulter_reads_in_flight', 'Page reads in progress (pread; hints return at once)');
    this.decodeErrors = counter('pg_prefaulter_decode_errors_total', 'WAL records that could not be decoded');
    this.walRecords = counter('pg_prefaulter_wal_records_total', 'WAL records decoded, by resource manager', ['rmgr']);
    this.walBytes = counter('pg_prefaulter_wal_bytes_total', 'WAL bytes decoded, by resource manager', ['rmgr']);
    this.fileHandleCacheHits = counter('pg_prefaulter_file_handle_cache_hits_total', 'Relation file opens served from the handle cache');
    this.fileHandleCacheMisses = counter('pg_prefaulter_file_handle_cache_misses_total', 'Relation file opens that needed open(2)');
    this.fileHandlesOpen = gauge('pg_prefaulter_file_handles_open', 'Relation file handles currently open');
    this.reconnects = counter('pg_prefaulter_reconnects_total', 'Reconnections, by target', ['target']);
    this.upstreamConnected = gauge('pg_prefaulter_upstream_connected', '1 while the replication connection to the upstream is up');
    this.walSource = gauge('pg_prefaulter_wal_source', 'Where WAL is read from: 1 for the current source, 0 for the other', ['source']);
    this.recoveryProgressVisible = gauge(
      'pg_prefaulter_recovery_progress_visible',
      '0 while the agent prefaults a recovery whose replay progress it cannot see (no shared PID namespace: a bounded window from the redo point only), else 1',
    );
    this.collectErrors = counter('pg_prefaulter_metrics_collect_errors_total', 'onCollect hooks that threw during a scrape');

    this.maxPagesAhead = gauge('pg_prefaulter_max_pages_ahead', 'The readahead window in use, in pages (max_pages_ahead, "auto" sized to the memory cgroup)');
    this.memoryLimit = gauge('pg_prefaulter_memory_limit_bytes', "The agent's memory cgroup limit (hinted pages are charged to it); 0 = no limit");
    this.memoryUsage = gauge('pg_prefaulter_memory_usage_bytes', "The agent's memory cgroup usage, page cache included");
    this.memoryPageCache = gauge('pg_prefaulter_memory_page_cache_bytes', "Page cache charged to the agent's memory cgroup (the pages it hinted first)");
    this.pagesFetchedForReplay = counter('pg_prefaulter_pages_fetched_for_replay_total', 'Hinted pages that were not in the page cache: storage reads replay did not wait for (estimated from one hint in 4)');
    this.prefaultsAlreadyResident = counter('pg_prefaulter_prefaults_already_resident_total', 'Hinted pages that were in the page cache already (estimated from one hint in 4)');
    this.replayWaitSaved = counter('pg_prefaulter_replay_wait_saved_seconds_total', 'Estimated replay wait saved: pages fetched for replay x 1 ms (a cloud volume read)');
    this.replayRate = gauge('pg_prefaulter_replay_rate_bytes_per_second', "Replay's WAL rate over the last ~10 s");
    this.catchUpSeconds = gauge('pg_prefaulter_catch_up_seconds', 'Replay lag / replay rate: seconds until caught up (0 caught up, +Inf not advancing, NaN unknown)');

    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    // Every label value known up front is exported from the start, so rate()
    // and absent() work before the first event.
    this.info.set({ version: opts.version ?? VERSION }, 1);
    this.setState('waiting_for_postgres');
    this.setRole('unknown');
    for (const s of WAL_SOURCES) this.walSource.set({ source: s }, 0);
    this.setIoMethod(null);
    for (const r of SKIP_REASONS) this.prefaultsSkipped.inc({ reason: r }, 0);
    for (const t of RECONNECT_TARGETS) this.reconnects.inc({ target: t }, 0);
    this.upstreamConnected.set(0);
    this.recoveryProgressVisible.set(1);
  }

  setState(state: AgentState): void {
    for (const s of AGENT_STATES) this.state.set({ state: s }, s === state ? 1 : 0);
  }

  setRole(role: Role): void {
    for (const r of ROLES) this.role.set({ role: r }, r === role ? 1 : 0);
  }

  /** The io method in use, or null before the agent has decided. */
  setIoMethod(method: IoMethod | null): void {
    for (const m of IO_METHODS_RUN) this.ioMethod.set({ method: m }, m === method ? 1 : 0);
  }

  /** The current WAL source, or null when none is active. */
  setWalSource(source: WalSource | null): void {
    for (const s of WAL_SOURCES) this.walSource.set({ source: s }, s === source ? 1 : 0);
  }

  /**
   * Sets a counter to an absolute value taken from a monotonic stats object.
   * A value lower than the last one fed means the source restarted (e.g. a new
   * session's stats): the new value is added on top, so the exported counter
   * never goes backwards.
   */
  setCounter<L extends string>(counter: Counter<L>, labels: Labels<L>, absoluteValue: number): void {
    if (!(absoluteValue >= 0) || !Number.isFinite(absoluteValue)) {
      throw new RangeError(`setCounter: ${String(absoluteValue)} is not a valid counter value (need a finite number >= 0)`);
    }
    const c = counter as unknown as Counter<string>;
    let perLabels = this.fed.get(c);
    if (!perLabels) this.fed.set(c, (perLabels = new Map()));
    const key = labelKey(labels);
    const last = perLabels.get(key) ?? 0;
    const delta = absoluteValue >= last ? absoluteValue - last : absoluteValue;
    perLabels.set(key, absoluteValue);
    c.inc(labels as Labels<string>, delta);
  }

  /** Runs `fn` before every scrape (to copy stats in). Returns a function that removes it. */
  onCollect(fn: CollectHook): () => void {
    this.hooks.push(fn);
    return () => {
      const i = this.hooks.indexOf(fn);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  /** Runs the collect hooks, then renders the text exposition format. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    for (const hook of this.hooks) {
      try {
        await hook();
      } catch {
        // A broken hook must not take monitoring down; it is counted instead.
        this.collectErrors.inc();
      }
    }
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

function labelKey(labels: Record<string, string | number | undefined>): string {
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}=${String(labels[k])}`).join(',');
}
