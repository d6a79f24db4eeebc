// Blocks whose page replay will still find in memory, judged in replay's
// terms: by how many distinct pages replay touches in between, not by the
// agent's clock (the agent decodes far ahead of replay, so "10 s ago" on its
// clock can be a whole shared_buffers ago for replay).
//
// The planner numbers the distinct pages of the WAL as it meets them (seq).
// An entry remembers the seq of the page's last reference and what kept the
// page in memory: replay itself (a full-page image or an initialised page,
// kept in the follower's shared_buffers) or our hint (kept in the page cache
// charged to this process, and in shared_buffers once replay read it). It
// is fresh while fewer than reach[kind] distinct pages came after it.
//
// Bounded and allocation-free: a 2-way set-associative table indexed by a
// hash of (spc, db, rel, fork, block). Each slot keeps the full key, so a hit
// is exact; an insert into a full pair replaces the older entry (which can
// only cost an extra, harmless read later).

const WORDS = 5;

/** Replay wrote the page from the record (image or WILL_INIT): it sits in shared_buffers. */
export const KEPT_BY_REPLAY = 0;
/** We hinted (or read) the page: it sits in the page cache, then in shared_buffers. */
export const KEPT_BY_HINT = 1;
export type KeptBy = typeof KEPT_BY_REPLAY | typeof KEPT_BY_HINT;

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export class RecentBlocks {
  readonly slots: number;
  private readonly mask: number;
  private readonly keys: Uint32Array;
  /** seq of the page's last reference; -Infinity = empty. */
  private readonly seen: Float64Array;
  private readonly kind: Uint8Array;
  /** Distinct pages after its last reference that a page kept by each kind stays in memory. */
  private readonly reach = new Float64Array(2);
  /** First slot of the pair find() looked at last (insert() reuses it). */
  private lastPair = 0;

  constructor(slots: number, reachByReplay: number, reachByHint: number) {
    this.slots = nextPowerOfTwo(Math.max(16, slots));
    this.mask = this.slots - 1;
    this.keys = new Uint32Array(this.slots * WORDS);
    this.seen = new Float64Array(this.slots).fill(-Infinity);
    this.kind = new Uint8Array(this.slots);
    this.setReach(reachByReplay, reachByHint);
  }

  /** How far (distinct pages) a page kept by replay / by our hint stays in memory; <= 0 disables. */
  setReach(byReplay: number, byHint: number): void {
    this.reach[KEPT_BY_REPLAY] = Math.max(0, byReplay);
    this.reach[KEPT_BY_HINT] = Math.max(0, byHint);
  }

  get reachByReplay(): number {
    return this.reach[KEPT_BY_REPLAY]!;
  }

  get reachByHint(): number {
    return this.reach[KEPT_BY_HINT]!;
  }

  /** The slot holding this block, or -1 (also remembers its pair for insert()). */
  find(spc: number, db: number, rel: number, fork: number, block: number): number {
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
    const first = (h >>> 0) & this.mask;
    this.lastPair = first;
    if (this.holds(first, spc, db, rel, fork, block)) return first;
    if (this.holds(first ^ 1, spc, db, rel, fork, block)) return first ^ 1;
    return -1;
  }

  /** Whether the page of a found slot is still in memory at seq. */
  fresh(slot: number, seq: number): boolean {
    return seq - this.seen[slot]! < this.reach[this.kind[slot]!]!;
  }

  /** What kept the page of a found slot in memory. */
  keptBy(slot: number): KeptBy {
    return this.kind[slot] as KeptBy;
  }

  /** A new reference to the page of a found slot; keptBy, when given, replaces what keeps it. */
  touch(slot: number, seq: number, keptBy?: KeptBy): void {
    this.seen[slot] = seq;
    if (keptBy !== undefined) this.kind[slot] = keptBy;
  }

  /** Records a block find() just missed, in the older (or empty) slot of its pair. */
  insert(spc: number, db: number, rel: number, fork: number, block: number, seq: number, keptBy: KeptBy): void {
    const first = this.lastPair;
    const second = first ^ 1;
    const slot = this.seen[second]! < this.seen[first]! ? second : first;
    const k = slot * WORDS;
    const keys = this.keys;
    keys[k] = spc;
    keys[k + 1] = db;
    keys[k + 2] = rel;
    keys[k + 3] = fork;
    keys[k + 4] = block;
    this.seen[slot] = seq;
    this.kind[slot] = keptBy;
  }

  /** Convenience for tests and callers off the hot path: is the block fresh at seq? */
  has(spc: number, db: number, rel: number, fork: number, block: number, seq: number): boolean {
    const slot = this.find(spc, db, rel, fork, block);
    return slot >= 0 && this.fresh(slot, seq);
  }

  /** Convenience: record a reference at seq (find + touch or insert). */
  add(spc: number, db: number, rel: number, fork: number, block: number, seq: number, keptBy: KeptBy): void {
    const slot = this.find(spc, db, rel, fork, block);
    if (slot >= 0) this.touch(slot, seq, keptBy);
    else this.insert(spc, db, rel, fork, block, seq, keptBy);
  }

  clear(): void {
    this.seen.fill(-Infinity);
  }

  private holds(slot: number, spc: number, db: number, rel: number, fork: number, block: number): boolean {
    if (this.seen[slot] === -Infinity) return false;
    const k = slot * WORDS;
    const keys = this.keys;
    return keys[k] === spc >>> 0 && keys[k + 1] === db >>> 0 && keys[k + 2] === rel >>> 0 && keys[k + 3] === fork && keys[k + 4] === block >>> 0;
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
