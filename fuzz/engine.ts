// A small coverage-guided fuzzer: V8's own block coverage (the inspector's
// Profiler.takePreciseCoverage after every input) decides which mutated inputs
// reach new code and join the corpus, as libFuzzer's counters do. Jazzer.js
// was the first choice; its native engine does not load here (see fuzz/README.md).
import { Session } from 'node:inspector';
import { createHash } from 'node:crypto';

export interface FuzzTarget {
  name: string;
  /** Inputs to start from, besides the files of fuzz/corpus/<name>/. */
  seeds(): Buffer[];
  /** Runs one input; throws when a property does not hold. */
  run(input: Buffer): void;
  /** longest input the mutator makes (default 4 KiB) */
  maxLen?: number;
  /** tokens the mutator splices in (keywords, magic numbers) */
  dictionary?: Array<string | Buffer>;
  /** source files whose coverage steers the search (path fragments, e.g. "/src/wal/") */
  covers: string[];
}

/** A property of the target did not hold for an input. */
export class PropertyViolation extends Error {}

export interface FuzzStats {
  execs: number;
  corpus: Buffer[];
  /** inputs found during this run that reached new coverage */
  found: Buffer[];
  features: number;
}

export interface FuzzOptions {
  timeMs: number;
  seed?: number;
  /** called before each input runs (the hang watchdog keeps a copy) */
  beforeRun?: (input: Buffer) => void;
}

/**
 * V8 block coverage of the files whose path contains one of `covers`. Start it
 * before the target's code first runs: a function compiled without coverage
 * reports only whole-function counts, which steer nothing.
 */
export class Coverage {
  private readonly session = new Session();
  private readonly seen = new Set<string>();
  covers: string[] = [];

  constructor() {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  // Same-thread inspector calls complete synchronously.
  private post(method: string, params: object = {}): any {
    let out: unknown;
    let err: Error | null = null;
    this.session.post(method, params, (e, r) => {
      err = e;
      out = r;
    });
    if (err) throw err;
    return out;
  }

  get size(): number {
    return this.seen.size;
  }

  /** Counters since the last call (they reset); true when a block or hit-count bucket is new. */
  collect(): boolean {
    const r = this.post('Profiler.takePreciseCoverage') as { result: Array<{ url: string; functions: Array<{ ranges: Array<{ startOffset: number; endOffset: number; count: number }> }> }> };
    let fresh = false;
    for (const script of r.result) {
      if (!this.covers.some((c) => script.url.includes(c))) continue;
      for (const f of script.functions) {
        for (const rg of f.ranges) {
          if (rg.count === 0) continue;
          const key = `${script.url}:${rg.startOffset}:${rg.endOffset}:${bucket(rg.count)}`;
          if (!this.seen.has(key)) {
            this.seen.add(key);
            fresh = true;
          }
        }
      }
    }
    return fresh;
  }

  close(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }
}

// AFL's hit-count buckets: a loop running once more is not new behaviour, a loop running 10x more is.
function bucket(n: number): number {
  return n <= 3 ? n : n <= 7 ? 4 : n <= 15 ? 5 : n <= 31 ? 6 : n <= 127 ? 7 : 8;
}

/** mulberry32 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 8192, 24, 40];

export class Mutator {
  private readonly dict: Buffer[];
  constructor(
    private readonly rand: () => number,
    private readonly maxLen: number,
    dictionary: Array<string | Buffer> = [],
  ) {
    this.dict = dictionary.map((d) => (typeof d === 'string' ? Buffer.from(d) : d));
  }

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  mutate(parent: Buffer, other: Buffer): Buffer {
    let b: Buffer = Buffer.from(parent);
    const rounds = 1 + this.int(4);
    for (let i = 0; i < rounds; i++) b = this.once(b, other);
    return b.length > this.maxLen ? b.subarray(0, this.maxLen) : b;
  }

  private once(b: Buffer, other: Buffer): Buffer {
    const pos = () => this.int(Math.max(1, b.length));
    switch (this.int(b.length ? 9 : 3)) {
      case 0: // insert random bytes
      case 1: {
        const n = 1 + this.int(8);
        const ins = Buffer.from(Array.from({ length: n }, () => this.int(256)));
        const p = this.int(b.length + 1);
        return Buffer.concat([b.subarray(0, p), ins, b.subarray(p)]);
      }
      case 2: {
        // dictionary token (inserted or overwritten)
        if (!this.dict.length) return this.once(b, other);
        const t = this.dict[this.int(this.dict.length)]!;
        const p = this.int(b.length + 1);
        return this.rand() < 0.5 ? Buffer.concat([b.subarray(0, p), t, b.subarray(p)]) : Buffer.concat([b.subarray(0, p), t, b.subarray(p + t.length)]);
      }
      case 3: {
        const p = pos();
        b[p] = b[p]! ^ (1 << this.int(8));
        return b;
      }
      case 4: {
        const p = pos();
        b[p] = this.int(256);
        return b;
      }
      case 5: {
        // delete a range
        const p = pos();
        const n = 1 + this.int(Math.min(64, b.length - p));
        return Buffer.concat([b.subarray(0, p), b.subarray(p + n)]);
      }
      case 6: {
        // an interesting integer, 1, 2 or 4 bytes, either endianness
        const v = INTERESTING[this.int(INTERESTING.length)]!;
        const w = [1, 2, 4][this.int(3)]!;
        const p = this.int(Math.max(1, b.length - w + 1));
        if (p + w > b.length) return b;
        const le = this.rand() < 0.5;
        if (w === 1) b[p] = v & 0xff;
        else if (w === 2) le ? b.writeUInt16LE(v & 0xffff, p) : b.writeUInt16BE(v & 0xffff, p);
        else le ? b.writeUInt32LE(v >>> 0, p) : b.writeUInt32BE(v >>> 0, p);
        return b;
      }
      case 7: {
        // duplicate a range
        const p = pos();
        const n = 1 + this.int(Math.min(256, b.length - p));
        const q = this.int(b.length + 1);
        return Buffer.concat([b.subarray(0, q), b.subarray(p, p + n), b.subarray(q)]);
      }
      default: {
        // splice with another corpus entry
        const p = pos();
        const q = this.int(Math.max(1, other.length));
        return Buffer.concat([b.subarray(0, p), other.subarray(q)]);
      }
    }
  }
}

export function inputName(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex').slice(0, 16);
}

/** Runs target for opts.timeMs from the corpus; throws (with .input) at the first property violation or unexpected error. */
export function fuzz(target: FuzzTarget, corpus: Buffer[], opts: FuzzOptions, cov = new Coverage()): FuzzStats {
  const rand = rng(opts.seed ?? Date.now());
  cov.covers = target.covers;
  cov.collect(); // drop the counts of whatever ran before
  const mutator = new Mutator(rand, target.maxLen ?? 4096, target.dictionary);
  const queue: Buffer[] = [];
  const found: Buffer[] = [];
  let execs = 0;
  const exec = (input: Buffer): boolean => {
    opts.beforeRun?.(input);
    try {
      target.run(input);
    } catch (e) {
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { input });
    }
    execs++;
    return cov.collect();
  };
  try {
    for (const c of corpus) if (exec(c) || queue.length === 0) queue.push(c);
    if (!queue.length) queue.push(Buffer.alloc(0));
    const deadline = Date.now() + opts.timeMs;
    while (Date.now() < deadline) {
      // Favour recent finds: they sit at the frontier of what is covered.
      const parent = queue[rand() < 0.5 ? queue.length - 1 - Math.floor(rand() * Math.min(8, queue.length)) : Math.floor(rand() * queue.length)]!;
      const other = queue[Math.floor(rand() * queue.length)]!;
      const child = mutator.mutate(parent, other);
      if (exec(child)) {
        queue.push(child);
        found.push(child);
      }
    }
  } finally {
    cov.close();
  }
  return { execs, corpus: queue, found, features: cov.size };
}
