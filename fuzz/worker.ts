// Runs one target inside a worker thread, so the parent can stop it on a hang
// or when it outgrows its memory limit, with the input it was on.
import { parentPort, workerData } from 'node:worker_threads';
import { Coverage, fuzz } from './engine.ts';

// Coverage first: the targets' code must be compiled with block counters.
const coverage = new Coverage();
const { loadTargets } = await import('./targets/index.ts');
const { learnSeed } = await import('./targets/wal-decoder.ts');

const { name, timeMs, seed, corpus, shared } = workerData as { name: string; timeMs: number; seed: number; corpus: Uint8Array[]; shared: SharedArrayBuffer };
const target = (await loadTargets()).find((t) => t.name === name)!;
// shared: [i32 heartbeat][i32 length][input bytes]: the parent reads the input of a hung or dying run from it
const header = new Int32Array(shared, 0, 2);
const bytes = new Uint8Array(shared, 8);
const inputs = [...target.seeds(), ...corpus.map((c) => Buffer.from(c))];
if (name === 'wal-decoder') for (const c of corpus) learnSeed(Buffer.from(c));
try {
  const stats = fuzz(target, inputs, {
    timeMs,
    seed,
    beforeRun(input) {
      const n = Math.min(input.length, bytes.length);
      bytes.set(input.subarray(0, n));
      Atomics.store(header, 1, n);
      Atomics.add(header, 0, 1);
    },
  }, coverage);
  parentPort!.postMessage({ kind: 'done', execs: stats.execs, features: stats.features, corpus: stats.corpus.length, found: stats.found });
} catch (e) {
  const err = e as Error & { input?: Buffer };
  parentPort!.postMessage({ kind: 'crash', message: err.stack ?? err.message, input: err.input ?? null });
}
