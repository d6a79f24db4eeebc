// The agent's states and the snapshot every view (/status, /metrics, the
// status command) reads. Adding a state is one line in AGENT_STATES (plus its
// line in README "How it works"); metrics/registry.ts derives its labels from it.
import type { FollowerStatus } from '../follower/index.ts';
import type { PrefaultStats } from '../prefault/index.ts';
import type { WalSourceKind } from '../options.ts';

/** In order of a normal start; `stopped` is the end, after SIGTERM. */
export const AGENT_STATES = ['waiting_for_postgres', 'recovering', 'primary_idle', 'following', 'streaming', 'wal_undecodable', 'stopped'] as const;
export type AgentState = (typeof AGENT_STATES)[number];
/** States a running agent exports as pg_prefaulter_state (all but `stopped`). */
export const RUNNING_STATES = AGENT_STATES.filter((s): s is Exclude<AgentState, 'stopped'> => s !== 'stopped');

export const ROLES = ['primary', 'standby', 'unknown'] as const;
export type Role = (typeof ROLES)[number];

export interface RmgrCounts {
  records: number;
  bytes: number;
}

/** What the agent sees of a recovery that runs before PostgreSQL accepts connections (no SQL: PGDATA and /proc). */
export interface RecoveryView {
  /** pg_control's state (e.g. "in crash recovery", "in archive recovery"). */
  controlState: string;
  /** crash (a primary) or archive (a standby, a point-in-time recovery). */
  kind: string;
  redoLsn: bigint;
  /** Where replay is, as far as we can tell: the startup process's segment, or the redo point. */
  replayLsn: bigint;
  /** The startup process's title is visible: the window follows replay. Else a bounded window from the redo point. */
  progressVisible: boolean;
  /** Why not, and how to make it visible (null when visible). */
  notVisibleReason: string | null;
  /** Pages hinted (or read) while PostgreSQL refused connections. */
  prefaultsIssued: number;
}

export interface AgentSnapshot {
  state: AgentState;
  role: Role;
  timeline: number | null;
  upstream: string | null;
  source: WalSourceKind | null;
  upstreamConnected: boolean;
  replayLsn: bigint | null;
  receiveLsn: bigint | null;
  streamLsn: bigint | null;
  decodedLsn: bigint | null;
  replayTimestamp: Date | null;
  replayPaused: boolean;
  lagBytes: number;
  lagSeconds: number;
  decodeErrors: number;
  walByRmgr: Map<string, RmgrCounts>;
  reconnects: { follower: number; upstream: number };
  prefault: PrefaultStats | null;
  /** Set while (and kept after) the agent prefaulted a recovery before PostgreSQL accepted connections. */
  recovery: RecoveryView | null;
  /** ms from process start to the first prefault hint (null: none yet). */
  firstHintMs: number | null;
  lastTick: number;
  startedAt: number;
}

export function initialSnapshot(now = Date.now()): AgentSnapshot {
  return {
    state: 'waiting_for_postgres',
    role: 'unknown',
    timeline: null,
    upstream: null,
    source: null,
    upstreamConnected: false,
    replayLsn: null,
    receiveLsn: null,
    streamLsn: null,
    decodedLsn: null,
    replayTimestamp: null,
    replayPaused: false,
    lagBytes: 0,
    lagSeconds: 0,
    decodeErrors: 0,
    walByRmgr: new Map(),
    reconnects: { follower: 0, upstream: 0 },
    prefault: null,
    recovery: null,
    firstHintMs: null,
    lastTick: now,
    startedAt: now,
  };
}

/** Forget the upstream: nothing streams (the node is a primary, or the session ended). */
export function clearUpstream(s: AgentSnapshot): void {
  s.upstream = null;
  s.upstreamConnected = false;
  s.source = null;
}

/** Copies a follower status into the snapshot, with the lag against the furthest WAL end known (follower's or upstream's). */
export function applyFollowerStatus(snap: AgentSnapshot, s: FollowerStatus, upstreamEnd: bigint | null): void {
  snap.lastTick = Date.now();
  snap.role = s.inRecovery ? 'standby' : 'primary';
  snap.timeline = s.timeline;
  snap.replayLsn = s.replayLsn;
  snap.receiveLsn = s.receiveLsn;
  snap.replayTimestamp = s.replayTimestamp;
  snap.replayPaused = s.replayPaused;
  let head = s.receiveLsn ?? 0n;
  if (upstreamEnd !== null && upstreamEnd > head) head = upstreamEnd;
  snap.lagBytes = s.replayLsn !== null && head > s.replayLsn ? Number(head - s.replayLsn) : 0;
  snap.lagSeconds = snap.lagBytes > 0 && s.replayTimestamp ? Math.max(0, (Date.now() - s.replayTimestamp.getTime()) / 1000) : 0;
}
