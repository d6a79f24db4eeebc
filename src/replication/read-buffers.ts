// Every socket read arrives in a fresh Buffer whose bytes live outside V8's
// heap. A dead Buffer's bytes are freed only when V8 collects the small object
// that owns them, and V8 times its young-generation collections by what the
// heap allocates, not by those outside bytes. Newer V8 (Node 22+) has a larger
// young generation, so a fast stream left 60+ MB of dead read buffers between
// collections (peak RSS 175 MB streaming a 1 GiB record on Node 26, against
// the 150 MB target). So after every COLLECT_EVERY bytes read we ask for a
// young-generation collection: ~0.1-1 ms, which frees them.
import { createRequire } from 'node:module';

/** Socket bytes read between young-generation collections: bounds the dead read buffers held. */
export const COLLECT_EVERY = 8 * 1024 * 1024;
let collectEvery = COLLECT_EVERY;

/** A smaller interval under a small memory limit (prefault/memory-heap.ts decides, the CLI sets it). */
export function setCollectEvery(bytes: number): void {
  collectEvery = Math.max(256 * 1024, bytes);
}

type Gc = (options?: { type?: 'major' | 'minor' }) => void;
let gc: Gc | null | undefined; // undefined: not looked up yet; null: unavailable
let sinceCollect = 0;

function lookUpGc(): Gc | null {
  const given = (globalThis as { gc?: Gc }).gc;
  if (typeof given === 'function') return given; // started with --expose-gc
  try {
    // Required on first use, not imported: node:vm costs the agent's start ~4 ms before its first hint.
    const require = createRequire(import.meta.url);
    const { setFlagsFromString } = require('node:v8') as typeof import('node:v8');
    const { runInNewContext } = require('node:vm') as typeof import('node:vm');
    // Puts gc() on the global of contexts created from now on; this one is unchanged.
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as Gc) : null;
  } catch {
    return null; // without it memory is still bounded, by V8's own (later) collections
  }
}

/** Counts bytes read from a socket; collects the young generation every COLLECT_EVERY bytes. */
export function noteSocketRead(bytes: number): void {
  sinceCollect += bytes;
  if (sinceCollect < collectEvery) return;
  sinceCollect = 0;
  if (gc === undefined) gc = lookUpGc();
  gc?.({ type: 'minor' });
}
