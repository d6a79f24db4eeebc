// How much page cache the pages we hint may occupy, and the readahead window
// that fits in it. A hinted page must stay resident until replay reads it, so
// the pages ahead of replay must fit in what our memory cgroup leaves after
// the process's own memory (or, without a limit, in what the machine has).
import { readMemAvailable, readMemoryCgroup, type MemoryCgroup } from './memory-cgroup.ts';
import type { ResidentPages } from './planner.ts';

/** The window's default and ceiling (pages). */
export const MAX_PAGES_AHEAD_DEFAULT = 16384;
/** Below this the window stops helping (one replay poll consumes it). */
export const MIN_PAGES_AHEAD = 256;
/** Kept free for the heap's growth and the kernel's own charges. */
export const HEADROOM_BYTES = 16 * 1024 * 1024;
/**
 * What the process itself holds while streaming a burst, at least: measured
 * ~65 MB of anonymous memory in the container benchmark (docs/benchmarks.md),
 * against ~20 MB idle, when the window is sized. Plus the headroom.
 */
export const PROCESS_BYTES = 80 * 1024 * 1024;

export interface MemoryBudget {
  /** Where the figure comes from. */
  source: 'cgroup v1' | 'cgroup v2' | 'machine' | 'unknown';
  limitBytes: number | null;
  /** Page cache our hinted pages may occupy, bytes; null = unknown (assume plenty). */
  pageCacheRoomBytes: number | null;
}

export function memoryBudget(cg: MemoryCgroup | null, memAvailableBytes: number | null): MemoryBudget {
  if (cg !== null && cg.limitBytes !== null) {
    // What the process holds itself (anonymous memory, kernel charges) is not ours to evict.
    const own = Math.max(PROCESS_BYTES, cg.usageBytes - cg.pageCacheBytes) + HEADROOM_BYTES;
    return { source: `cgroup v${cg.version}`, limitBytes: cg.limitBytes, pageCacheRoomBytes: Math.max(0, cg.limitBytes - own) };
  }
  if (memAvailableBytes !== null) return { source: 'machine', limitBytes: null, pageCacheRoomBytes: memAvailableBytes };
  return { source: 'unknown', limitBytes: null, pageCacheRoomBytes: null };
}

export interface WindowSize {
  maxPagesAhead: number;
  /** Why the configured window cannot stay resident (log it as a warning); null when it fits. */
  warning: string | null;
}

/**
 * max_pages_ahead: "auto" takes half the room (the kernel's inactive list,
 * where new pages wait, is about half the file cache), capped at the default;
 * a number is kept but warned about when it cannot fit.
 */
export function sizeWindow(setting: number | 'auto', budget: MemoryBudget, blockSize: number): WindowSize {
  const room = budget.pageCacheRoomBytes;
  const fits = room === null ? Infinity : Math.floor(room / blockSize / 2);
  const mib = (b: number) => `${Math.round(b / 1048576)} MiB`;
  if (budget.limitBytes !== null && fits < MIN_PAGES_AHEAD) {
    return {
      maxPagesAhead: setting === 'auto' ? MIN_PAGES_AHEAD : setting,
      warning:
        `this container's memory limit (${budget.source}, ${mib(budget.limitBytes)}) leaves no room for hinted pages: the process itself needs ` +
        `about ${mib(PROCESS_BYTES + HEADROOM_BYTES)} while streaming a burst and is OOM-killed below that (docs/benchmarks.md, container mode). ` +
        `Give it at least ${mib(PROCESS_BYTES + HEADROOM_BYTES + 2 * MIN_PAGES_AHEAD * blockSize)}, better 1 GiB (the pages it hints are page cache the follower gains)`,
    };
  }
  if (setting === 'auto') return { maxPagesAhead: Math.max(MIN_PAGES_AHEAD, Math.min(MAX_PAGES_AHEAD_DEFAULT, fits)), warning: null };
  if (setting <= fits) return { maxPagesAhead: setting, warning: null };
  return {
    maxPagesAhead: setting,
    warning:
      `max_pages_ahead = ${setting} keeps up to ${mib(setting * blockSize)} of hinted pages in the page cache until replay reads them, ` +
      `but ${budget.limitBytes !== null ? `this container's memory limit (${budget.source}, ${mib(budget.limitBytes)}) leaves` : 'this machine has'} about ` +
      `${mib(room ?? 0)} for them (${fits} pages fit with a margin): the kernel evicts hinted pages before replay gets there and they are read twice. ` +
      'Set max_pages_ahead = "auto" (sizes the window to the limit), lower it, or raise the memory limit',
  };
}

/** Pages of page cache our hints may count on (the planner's reach for hinted pages). */
export function pageCachePages(budget: MemoryBudget, blockSize: number): number {
  return budget.pageCacheRoomBytes === null ? MAX_PAGES_AHEAD_DEFAULT * 4 : Math.floor(budget.pageCacheRoomBytes / blockSize);
}

export interface MemoryPlan {
  budget: MemoryBudget;
  window: WindowSize;
  /** What the planner counts on staying in memory. */
  resident: ResidentPages;
}

/** Reads our cgroup (or the machine) now and plans the window and the planner's reach for a follower. */
export function planMemory(setting: number | 'auto', blockSize: number, followerSharedBuffersBytes: number): MemoryPlan {
  const budget = memoryBudget(readMemoryCgroup(), readMemAvailable());
  return {
    budget,
    window: sizeWindow(setting, budget, blockSize),
    resident: { sharedBuffers: Math.floor(followerSharedBuffersBytes / blockSize), pageCache: pageCachePages(budget, blockSize) },
  };
}
