// What checking a hinted page's residency costs the hot path: per page, the
// WILLNEED hint alone, the hint plus the residency probe every time, and the
// hint plus the probe on one hint in RESIDENCY_SAMPLE (what the agent does).
// Pages are cached, so the hint itself does no IO.
//   node --import tsx bench/residency-probe.ts
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadResidencyProbe } from '../src/prefault/page-residency.ts';
import { loadWillneed } from '../src/prefault/willneed.ts';
import { RESIDENCY_SAMPLE } from '../src/prefault/prefaulter.ts';

const PAGES = 1000;
const CALLS = 200_000;
const probe = loadResidencyProbe();
const willneed = loadWillneed();
if (!('probe' in probe) || !('hint' in willneed)) {
  console.error(`cannot measure here: ${'error' in probe ? probe.error : ''} ${'error' in willneed ? willneed.error : ''}`);
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), 'pgpf-probe-'));
const file = join(dir, 'pages');
writeFileSync(file, Buffer.alloc(PAGES * 8192, 1));
const fd = openSync(file, 'r');
const hint = willneed.hint;
const check = probe.probe;

function perCall(body: (i: number) => void): number {
  const t = performance.now();
  for (let i = 0; i < CALLS; i++) body(i);
  return ((performance.now() - t) * 1000) / CALLS;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const runs: Record<string, number[]> = { hint: [], 'hint + probe each': [], [`hint + probe 1 in ${RESIDENCY_SAMPLE}`]: [] };
for (let r = 0; r < 7; r++) {
  runs.hint!.push(perCall((i) => hint(fd, (i % PAGES) * 8192, 8192)));
  runs['hint + probe each']!.push(perCall((i) => {
    check(fd, (i % PAGES) * 8192);
    hint(fd, (i % PAGES) * 8192, 8192);
  }));
  let n = RESIDENCY_SAMPLE;
  runs[`hint + probe 1 in ${RESIDENCY_SAMPLE}`]!.push(perCall((i) => {
    if (--n === 0) {
      n = RESIDENCY_SAMPLE;
      check(fd, (i % PAGES) * 8192);
    }
    hint(fd, (i % PAGES) * 8192, 8192);
  }));
}
closeSync(fd);
rmSync(dir, { recursive: true, force: true });
console.log(`residency probe: ${probe.how}; ${CALLS} calls per run, median of 7 runs (us per page)`);
for (const [name, xs] of Object.entries(runs)) console.log(`${name.padEnd(24)} ${median(xs).toFixed(3)}`);
