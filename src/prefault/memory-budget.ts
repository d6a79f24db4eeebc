// How much page cache the pages we hint may occupy, and the readahead window
// that fits in it. A hinted page must stay resident until replay reads it, so
// the pages ahead of replay must fit in what our memory cgroup leaves after
// the process's own memory (or, without a limit, in what the machine has).
import { readMemAvailable, readMemoryCgroup, type MemoryCgroup } from './memory-cgroup.ts';
import { heapPlan } from './memory-heap.ts';
import type { ResidentPages } from './planner.ts';

/** The window's default and ceiling (pages). */
export const MAX_PAGES_AHEAD_DEFAULT = 16384;
/** Below this the window stops helping (one replay poll consumes it). */
export const MIN_PAGES_AHEAD = 256;
/** Kept free for the heap's growth and the kernel's own charges. */
export const HEADROOM_BYTES = 16 * 1024 * 1024;
/**
 * What the process itself holds while streaming a burst, at least: measured
 * 49-65 MB of anonymous memory in the container benchmark (docs/benchmarks.md),
 * against ~20 MB idle (Node.js 20; 28 MB on 26), when the window is sized.
 */
export const PROCESS_BYTES = 80 * 1024 * 1024;
/** The same under a limit that gets the small heap (memory-heap.ts): 41 MB measured. */
export const SMALL_HEAP_PROCESS_BYTES = 48 * 1024 * 1024;

/** What the process counts for itself under this cgroup. */
export function processBytes(cg: Pick<MemoryCgroup, 'limitBytes'> | null): number {
  return heapPlan(cg).fixedYoungGeneration ? SMALL_HEAP_PROCESS_BYTES : PROCESS_BYTES;
}

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
    const own = Math.max(processBytes(cg), cg.usageBytes - cg.pageCacheBytes) + HEADROOM_BYTES;
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

/** "auto" takes this share of the room. */
export const AUTO_ROOM_SHARE = 8;

/**
 * max_pages_ahead: "auto" takes an eighth of the room, capped at the default;
 * a number is kept but warned about when it cannot fit (more than half the
 * room: the kernel's inactive list, where new pages wait, is about half the
 * file cache). Why an eighth: under the limit, the pages replay has read are
 * referenced and kept, and the kernel reclaims the hinted pages still waiting
 * for replay first; with a 128 MiB agent (64 MiB of room) a 4 096-page window
 * left ~2 000 replay misses and 4.6-7.4 s, 1 024 pages ~800 and 2.2-2.3 s
 * (docs/benchmarks.md, container mode).
 */
export function sizeWindow(setting: number | 'auto', budget: MemoryBudget, blockSize: number): WindowSize {
  const room = budget.pageCacheRoomBytes;
  const fits = room === null ? Infinity : Math.floor(room / blockSize / 2);
  const mib = (b: number) => `${Math.round(b / 1048576)} MiB`;
  if (budget.limitBytes !== null && fits < MIN_PAGES_AHEAD) {
    const own = processBytes({ limitBytes: budget.limitBytes }) + HEADROOM_BYTES;
    return {
      maxPagesAhead: setting === 'auto' ? MIN_PAGES_AHEAD : setting,
      warning:
        `this container's memory limit (${budget.source}, ${mib(budget.limitBytes)}) leaves almost no room for hinted pages: the process itself holds ` +
        `up to about ${mib(own)} while streaming a burst (docs/benchmarks.md, container mode), so the window stays at ${MIN_PAGES_AHEAD} pages and ` +
        `hinted pages may be evicted before replay reads them. Give it at least ${mib(own + 2 * 2048 * blockSize)}, better 1 GiB (the pages it hints are page cache the follower gains)`,
    };
  }
  if (setting === 'auto') {
    const share = room === null ? Infinity : Math.floor(room / blockSize / AUTO_ROOM_SHARE);
    return { maxPagesAhead: Math.max(MIN_PAGES_AHEAD, Math.min(MAX_PAGES_AHEAD_DEFAULT, share)), warning: null };
  }
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
