// "Recently prefaulted" as a bounded, allocation-free set: a 2-way
// set-associative table indexed by a hash of (spc, db, rel, fork, block).
// Each slot keeps the full key, so a hit is exact; an insert into a full pair
// replaces the older entry (which can only cost an extra, harmless read later).

const WORDS = 5;

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export class RecentBlocks {
  readonly slots: number;
  private readonly mask: number;
  private readonly keys: Uint32Array;
  /** When the slot was filled (ms, performance.now()); 0 = empty. */
  private readonly stamps: Float64Array;
  private readonly ttlMs: number;

  constructor(slots: number, ttlMs: number) {
    this.slots = nextPowerOfTwo(Math.max(16, slots));
    this.mask = this.slots - 1;
    this.keys = new Uint32Array(this.slots * WORDS);
    this.stamps = new Float64Array(this.slots);
    this.ttlMs = ttlMs;
  }

  private slotOf(spc: number, db: number, rel: number, fork: number, block: number): number {
    // murmur3-style mixing of the five words
    let h = 0x9747b28c;
    h = mix(h, spc);
    h = mix(h, db);
    h = mix(h, rel);
    h = mix(h, fork);
    h = mix(h, block);
    // fmix32: every input bit reaches the low bits we mask
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return (h >>> 0) & this.mask;
  }

  private matches(slot: number, spc: number, db: number, rel: number, fork: number, block: number, now: number): boolean {
    const stamp = this.stamps[slot]!;
    if (stamp === 0 || now - stamp > this.ttlMs) return false;
    const k = slot * WORDS;
    const keys = this.keys;
    return keys[k] === spc >>> 0 && keys[k + 1] === db >>> 0 && keys[k + 2] === rel >>> 0 && keys[k + 3] === fork && keys[k + 4] === block >>> 0;
  }

  /** True if the block was added less than ttlMs ago (now from performance.now()). */
  has(spc: number, db: number, rel: number, fork: number, block: number, now: number): boolean {
    const slot = this.slotOf(spc, db, rel, fork, block);
    return this.matches(slot, spc, db, rel, fork, block, now) || this.matches(slot ^ 1, spc, db, rel, fork, block, now);
  }

  add(spc: number, db: number, rel: number, fork: number, block: number, now: number): void {
    const first = this.slotOf(spc, db, rel, fork, block);
    const second = first ^ 1;
    // Refresh the entry holding this key, else take the older (or empty) of the pair.
    let slot: number;
    if (this.matches(first, spc, db, rel, fork, block, now)) slot = first;
    else if (this.matches(second, spc, db, rel, fork, block, now)) slot = second;
    else slot = this.stamps[second]! < this.stamps[first]! ? second : first;
    const k = slot * WORDS;
    const keys = this.keys;
    keys[k] = spc;
    keys[k + 1] = db;
    keys[k + 2] = rel;
    keys[k + 3] = fork;
    keys[k + 4] = block;
    this.stamps[slot] = now > 0 ? now : Number.MIN_VALUE;
  }

  clear(): void {
    this.stamps.fill(0);
  }
}

function mix(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}
