// One place that builds a Prefaulter from the configuration and the cluster's
// layout: from SQL facts (a session) or from pg_control (a recovery prefetch).
import type { Log } from '../log.ts';
import type { Config } from '../config/schema.ts';
import { Prefaulter, planMemory, residencyProbeOrNull, type MemoryPlan, type ResolvedIoMethod } from '../prefault/index.ts';

export interface ClusterLayout {
  pgdata: string;
  blockSize: number;
  majorVersion: number;
  catalogVersion: number;
}

/**
 * The window and reach for our memory cgroup (prefault/memory-budget.ts), logged.
 * followerSharedBuffersBytes: 0 when unknown (before SQL): images are then not trusted to stay in shared_buffers.
 */
export function planWindow(cfg: Config, blockSize: number, followerSharedBuffersBytes: number, log: Log): MemoryPlan {
  const memory = planMemory(cfg.maxPagesAhead, blockSize, followerSharedBuffersBytes);
  if (memory.window.warning) log.warn({ memory: memory.budget }, memory.window.warning);
  log.info({ maxPagesAhead: memory.window.maxPagesAhead, setting: cfg.maxPagesAhead, memory: memory.budget, resident: memory.resident }, 'readahead window sized');
  return memory;
}

export function newPrefaulter(
  cfg: Config,
  layout: ClusterLayout,
  io: ResolvedIoMethod,
  memory: MemoryPlan,
  observeReadSeconds: ((s: number) => void) | undefined,
): Prefaulter {
  return new Prefaulter({
    ...layout,
    readaheadBytes: cfg.readaheadBytes,
    maxPagesAhead: memory.window.maxPagesAhead,
    resident: memory.resident,
    residencyProbe: residencyProbeOrNull(),
    ioConcurrency: cfg.ioConcurrency,
    ioMethod: io,
    maxOpenFiles: cfg.maxOpenFiles || undefined,
    observeReadSeconds,
  });
}
