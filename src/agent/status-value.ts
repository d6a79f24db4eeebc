// What prefaulting is worth, as /status, the status command and /metrics show
// it: hinted pages that were not resident (replay would have read each from
// storage), an estimate of the replay wait that saved, replay's rate, the
// catch-up ETA, and the memory our cgroup gives the hinted pages.
import type { CatchUpEstimate } from '../follower/index.ts';
import type { AgentMetrics } from '../metrics/registry.ts';
import { readMemoryCgroup, type MemoryPlan, type PrefaultStats } from '../prefault/index.ts';

/** A storage read as replay waits for it: a cloud volume's ~1 ms (the benchmark's model too). */
export const ASSUMED_READ_SECONDS = 0.001;

export interface AgentValue {
  /** Hinted pages found not resident (estimated from a sample of hints): storage reads replay did not wait for. */
  pagesFetchedForReplay: number;
  /** Hinted pages that were resident already (the hint saved nothing). */
  pagesAlreadyResident: number;
  /** pagesFetchedForReplay x ASSUMED_READ_SECONDS. */
  replayWaitSavedSeconds: number;
  replayRateBytesPerSecond: number | null;
  /** Seconds to catch up at the current rate; null = unknown or replay not advancing. */
  catchUpSeconds: number | null;
  memory: {
    source: string;
    limitBytes: number | null;
    usageBytes: number | null;
    pageCacheBytes: number | null;
    /** Page cache the hinted pages could use when the window was sized. */
    pageCacheRoomBytes: number | null;
  } | null;
}

export function agentValue(p: PrefaultStats | null, catchUp: CatchUpEstimate, memory: MemoryPlan | null): AgentValue {
  const fetched = p?.hintedNotResident ?? 0;
  const eta = catchUp.etaSeconds;
  const cg = memory ? readMemoryCgroup() : null;
  return {
    pagesFetchedForReplay: fetched,
    pagesAlreadyResident: p?.hintedResident ?? 0,
    replayWaitSavedSeconds: fetched * ASSUMED_READ_SECONDS,
    replayRateBytesPerSecond: catchUp.rateBytesPerSecond,
    catchUpSeconds: eta !== null && Number.isFinite(eta) ? eta : null,
    memory: memory
      ? {
          source: memory.budget.source,
          limitBytes: memory.budget.limitBytes,
          usageBytes: cg?.usageBytes ?? null,
          pageCacheBytes: cg?.pageCacheBytes ?? null,
          pageCacheRoomBytes: memory.budget.pageCacheRoomBytes,
        }
      : null,
  };
}

/** Copies the value and memory figures into the metrics (at scrape time). */
export function copyValueMetrics(v: AgentValue, maxPagesAhead: number | null, m: AgentMetrics): void {
  if (maxPagesAhead !== null) m.maxPagesAhead.set(maxPagesAhead);
  m.memoryLimit.set(v.memory?.limitBytes ?? 0);
  if (v.memory?.usageBytes != null) m.memoryUsage.set(v.memory.usageBytes);
  if (v.memory?.pageCacheBytes != null) m.memoryPageCache.set(v.memory.pageCacheBytes);
  m.setCounter(m.pagesFetchedForReplay, {}, v.pagesFetchedForReplay);
  m.setCounter(m.prefaultsAlreadyResident, {}, v.pagesAlreadyResident);
  m.setCounter(m.replayWaitSaved, {}, v.replayWaitSavedSeconds);
  m.replayRate.set(v.replayRateBytesPerSecond ?? NaN);
  m.catchUpSeconds.set(v.catchUpSeconds ?? (v.replayRateBytesPerSecond === 0 ? Infinity : NaN));
}
