// npm run fuzz -- [--time SECONDS] [--save] [--seed N] [TARGET...]
// Runs each fuzz target (all by default) for --time seconds (default 30) in a
// worker thread from its corpus (fuzz/corpus/<target>/). A property violation,
// an exception, a hang (no new input for --hang seconds) or running out of
// memory saves the input to fuzz/crashes/<target>/ and makes the exit code 1:
// add the file to the repository and test/fuzz-regressions.test.ts replays it.
// --save adds the inputs that reached new coverage to the corpus; --time 0
// only replays the saved crashes and the corpus (test/fuzz-regressions.test.ts).
import { Worker } from 'node:worker_threads';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { inputName } from './engine.ts';
import { loadTargets } from './targets/index.ts';

const ROOT = fileURLToPath(new URL('.', import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { time: { type: 'string', default: '30' }, save: { type: 'boolean', default: false }, seed: { type: 'string' }, hang: { type: 'string', default: '10' }, 'memory-mb': { type: 'string', default: '512' } },
});
const timeMs = Number(values.time) * 1000;
const hangMs = Number(values.hang) * 1000;
const all = await loadTargets();
const chosen = positionals.length ? all.filter((t) => positionals.includes(t.name)) : all;
if (positionals.length && chosen.length !== positionals.length) {
  console.error(`unknown target in ${positionals.join(', ')}; targets: ${all.map((t) => t.name).join(', ')}`);
  process.exit(2);
}
if (!all.some((t) => t.name === 'control-file')) console.log('control-file: no target (src/follower/control-file.ts with parseControlFile(buf) does not exist yet)');

export function readCorpus(dir: string): Buffer[] {
  try {
    return readdirSync(dir).sort().map((f) => readFileSync(join(dir, f)));
  } catch {
    return [];
  }
}

export function save(dir: string, input: Buffer): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${inputName(input)}.bin`);
  writeFileSync(file, input);
  return file;
}

let failed = false;
for (const target of chosen) {
  const corpusDir = join(ROOT, 'corpus', target.name);
  // saved crashes run first, every time: they are the regression inputs
  const corpus = [...readCorpus(join(ROOT, 'crashes', target.name)), ...readCorpus(corpusDir)];
  const shared = new SharedArrayBuffer(8 + (target.maxLen ?? 4096) + 64 * 1024);
  const header = new Int32Array(shared, 0, 2);
  const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
  const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), {
    workerData: { name: target.name, timeMs, seed, corpus, shared },
    resourceLimits: { maxOldGenerationSizeMb: Number(values['memory-mb']) },
  });
  const current = () => Buffer.from(new Uint8Array(shared, 8, Atomics.load(header, 1)));
  const outcome = await new Promise<{ kind: string; message?: string; input?: Buffer | null; execs?: number; features?: number; corpus?: number; found?: Uint8Array[] }>((resolve) => {
    let beat = -1;
    let beatAt = Date.now();
    const watchdog = setInterval(() => {
      const now = Atomics.load(header, 0);
      if (now !== beat) {
        beat = now;
        beatAt = Date.now();
      } else if (Date.now() - beatAt > hangMs) {
        clearInterval(watchdog);
        const input = current();
        void worker.terminate();
        resolve({ kind: 'crash', message: `hang: one input ran for more than ${hangMs / 1000} s`, input });
      }
    }, 250);
    worker.on('message', (m) => {
      clearInterval(watchdog);
      resolve({ ...m, input: m.input ? Buffer.from(m.input) : null });
    });
    worker.on('error', (e) => {
      clearInterval(watchdog);
      resolve({ kind: 'crash', message: `worker died: ${e.message} (memory limit ${values['memory-mb']} MB?)`, input: current() });
    });
  });
  await worker.terminate();
  if (outcome.kind === 'crash') {
    failed = true;
    const file = outcome.input ? save(join(ROOT, 'crashes', target.name), outcome.input) : '(no input)';
    console.log(`${target.name}: FAILED (seed ${seed}) on ${file}\n${outcome.message}`);
    continue;
  }
  console.log(`${target.name}: ${outcome.execs} inputs in ${values.time} s, ${outcome.features} coverage features, corpus ${outcome.corpus} (${outcome.found!.length} new), seed ${seed}`);
  if (values.save) for (const f of outcome.found!) save(corpusDir, Buffer.from(f));
}
process.exit(failed ? 1 : 0);
