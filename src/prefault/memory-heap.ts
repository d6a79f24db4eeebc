// V8's heap sized to a small memory cgroup. A process that streams WAL fast
// allocates fast; V8 then grows its young generation (up to 2 x 16 MiB on
// Node 20, more on newer V8) and frees dead socket buffers only when it
// collects: ~65 MB of anonymous memory while streaming a burst, against
// ~20-28 MB idle, which got the agent OOM-killed under a 64 MiB limit
// (docs/benchmarks.md, container mode). Under a small limit we keep the young
// generation small (2-6 MiB: collections come sooner and each costs less) and
// collect read buffers more often. Changed at run time, so every way of
// starting the process (the image's ENTRYPOINT, a manifest's own command,
// npx) gets it without a second process: V8 reads this flag at each
// young-generation sizing decision (test/prefault-memory-heap.test.ts checks
// that on the Node.js it runs, started as the image starts it).
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { readMemoryCgroup, type MemoryCgroup } from './memory-cgroup.ts';

/** Limits up to this get the small heap (1 GiB agents keep V8's defaults). */
export const SMALL_LIMIT_BYTES = 512 * 1024 * 1024;

export interface HeapPlan {
  /** Keep the young generation at its initial size (V8 --semi-space-growth-factor=1). */
  fixedYoungGeneration: boolean;
  /** Socket bytes read between young-generation collections (read-buffers.ts). */
  collectEveryBytes: number;
}

/** What the heap should do under this cgroup (null: none readable). */
export function heapPlan(cg: Pick<MemoryCgroup, 'limitBytes'> | null): HeapPlan {
  const limit = cg?.limitBytes ?? null;
  if (limit === null || limit > SMALL_LIMIT_BYTES) return { fixedYoungGeneration: false, collectEveryBytes: 8 * 1024 * 1024 };
  return { fixedYoungGeneration: true, collectEveryBytes: 2 * 1024 * 1024 };
}

/** Applies the young-generation part of a plan to this process; returns the young generation's size now, bytes. */
export function applyHeapPlan(plan: HeapPlan): number {
  if (plan.fixedYoungGeneration) setFlagsFromString('--semi-space-growth-factor=1');
  return youngGenerationBytes();
}

export type SizedHeap = HeapPlan & { limitBytes: number | null; youngGenerationBytes: number };
let sized: SizedHeap | null = null;

/**
 * Reads our memory cgroup and applies its plan, once per process. The CLI
 * calls it first thing (cli/main.ts), before loading run's modules: loading
 * them grows the young generation to 4 MiB, and V8 on Node 26 grows it on
 * from whatever size the plan finds (to 8-10 MiB from 3-4 MiB, 2-5 MiB from 0.5).
 */
export function sizeHeapToCgroup(): SizedHeap {
  if (sized) return sized;
  const cg = readMemoryCgroup();
  const plan = heapPlan(cg);
  sized = { ...plan, limitBytes: cg?.limitBytes ?? null, youngGenerationBytes: applyHeapPlan(plan) };
  return sized;
}

export function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}
