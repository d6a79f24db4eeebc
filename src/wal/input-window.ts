// The decoder's input: pushed chunks become a window of contiguous WAL bytes, read in
// place when possible and copied only to bridge a record across chunks. Positions inside
// the window are plain numbers (offsets from `base`, the LSN of data[0]) so the hot path
// does little BigInt work; the LSN helpers here turn them back into LSNs.
import { formatLsn } from '../lsn.ts';

const MIN_OWNED_CAPACITY = 64 * 1024;
/** An owned window this large is reallocated smaller once what it holds fits in a quarter. */
const SHRINK_WINDOW_ABOVE = 256 * 1024;
/** Record LSNs are numbers (exact below 2^53): input beyond this is refused. */
const MAX_BASE = BigInt(Number.MAX_SAFE_INTEGER) - (1n << 40n);
const EMPTY = new Uint8Array(0);

/** Base of WalDecoder: the input window and LSN arithmetic on window positions. */
export abstract class WalInputWindow {
  protected readonly pageSize: number;
  protected readonly segSize: number;
  private readonly pageSizeBig: bigint;
  private readonly segSizeBig: bigint;

  // data[0, end) holds bytes from LSN `base`; bytes before `cur` are no longer needed.
  protected data: Uint8Array = EMPTY;
  private owned = false;
  /** pushed chunks not yet in the window, in order */
  protected pending: Uint8Array[] = [];
  protected pendingBytes = 0;
  protected end = 0;
  protected base = 0n;
  protected basePageOff = 0;
  protected baseSegOff = 0;
  /** Number(base): base + any window offset stays exact as a double */
  private baseNum = 0;
  protected cur = 0;
  /**
   * The chunk pull() last copied a piece of to bridge a record (null: none), the window
   * position of its first byte, and the rest of it still queued: once the cursor is past
   * the bridged record, the chunk is read in place again instead of copied piece by piece.
   */
  private bridged: Uint8Array | null = null;
  private bridgedAt = 0;
  private bridgedRest: Uint8Array | null = null;

  protected constructor(pageSize: number, segSize: number) {
    this.pageSize = pageSize;
    this.segSize = segSize;
    this.pageSizeBig = BigInt(pageSize);
    this.segSizeBig = BigInt(segSize);
  }

  /** LSN of the next byte push() expects. */
  get inputLsn(): bigint {
    return this.base + BigInt(this.end + this.pendingBytes);
  }

  /** Where the next record starts (or, after damage, where the search for one continues). */
  get nextRecordLsn(): bigint {
    return this.base + BigInt(this.cur);
  }

  /** Bytes held for a record not yet complete (0 when the input ended between records). */
  get bufferedBytes(): number {
    return Math.max(0, this.end - this.cur) + this.pendingBytes;
  }

  /** Bytes of the window the decoder allocated itself (pushed chunks not counted). */
  protected get ownedBytes(): number {
    return this.owned ? this.data.length : 0;
  }

  /**
   * The next bytes of WAL, contiguous with what came before (inputLsn). The chunk is
   * not modified, but it is kept and read in place until decoded: do not reuse its memory.
   */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.pending.length === 0) {
      if (this.cur >= this.end) {
        this.adopt(chunk);
        return;
      }
      if (this.roomFor(chunk.length)) {
        this.data.set(chunk, this.end);
        this.end += chunk.length;
        return;
      }
    }
    // Queued, not copied: next() bridges a record across the boundary by copying only what it needs.
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** Drops every byte held and starts the window at lsn. */
  protected clearInput(lsn: bigint): void {
    this.data = EMPTY;
    this.owned = false;
    this.end = 0;
    this.cur = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.bridged = null;
    this.rebase(lsn);
  }

  /** Makes the next queued bytes part of the window. */
  protected pull(): void {
    const c = this.pending[0]!;
    if (this.cur >= this.end) {
      this.pending.shift();
      this.pendingBytes -= c.length;
      this.adopt(c);
      return;
    }
    if (this.bridged !== null && c === this.bridgedRest && this.cur >= this.bridgedAt) {
      // Everything held is a copy of the chunk bridged last: read that chunk in place from here.
      const src = this.bridged;
      const at = this.bridgedAt;
      this.pending.shift();
      this.pendingBytes -= c.length;
      this.bridged = null;
      this.rebase(this.base + BigInt(at));
      this.data = src;
      this.owned = false;
      this.cur -= at;
      this.end = src.length;
      return;
    }
    // Copy a piece at least as large as what is held, so repeated bridging of one big record stays linear.
    const piece = Math.min(c.length, Math.max(MIN_OWNED_CAPACITY, this.end - this.cur));
    if (piece === c.length) this.pending.shift();
    else this.pending[0] = c.subarray(piece);
    this.pendingBytes -= piece;
    this.append(c.subarray(0, piece));
    this.bridged = piece === c.length ? null : c;
    this.bridgedAt = this.end - piece;
    this.bridgedRest = piece === c.length ? null : this.pending[0]!;
  }

  /** Bytes from pos on are not written yet: forget them, so the caller pushes them again from inputLsn. */
  protected unwritten(pos: number): void {
    if (pos < this.end) this.end = pos;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** The owned window takes n more bytes in place, and is not one a big record left far too large. */
  private roomFor(n: number): boolean {
    return this.owned && this.end + n <= this.data.length && !(this.data.length > SHRINK_WINDOW_ABOVE && (this.end - this.cur + n) * 4 <= this.data.length);
  }

  /** Nothing held: take the chunk as the window without copying, skipping bytes the cursor has passed (after XLOG_SWITCH). */
  private adopt(chunk: Uint8Array): void {
    const skip = this.cur - this.end;
    const start = this.base + BigInt(this.end);
    if (skip >= chunk.length) {
      this.data = EMPTY;
      this.owned = false;
      this.cur = skip - chunk.length;
      this.end = 0;
      this.rebase(start + BigInt(chunk.length));
      return;
    }
    this.data = chunk.subarray(skip);
    this.owned = false;
    this.end = this.data.length;
    this.cur = 0;
    this.rebase(start + BigInt(skip));
  }

  /** Appends to the held bytes [cur, end), compacting or growing an owned window. */
  private append(chunk: Uint8Array): void {
    if (this.roomFor(chunk.length)) {
      this.data.set(chunk, this.end);
      this.end += chunk.length;
      return;
    }
    const keep = this.end - this.cur;
    const need = keep + chunk.length;
    let target = this.data;
    if (!this.owned || need > this.data.length) {
      target = new Uint8Array(Math.max(MIN_OWNED_CAPACITY, need, this.owned ? this.data.length * 2 : 0));
    } else if (this.data.length > SHRINK_WINDOW_ABOVE && need * 4 <= this.data.length) {
      target = new Uint8Array(Math.max(MIN_OWNED_CAPACITY, need * 2)); // the big record that grew it is gone
    }
    if (target === this.data) this.data.copyWithin(0, this.cur, this.end);
    else target.set(this.data.subarray(this.cur, this.end), 0);
    target.set(chunk, keep);
    const newBase = this.base + BigInt(this.cur);
    this.data = target;
    this.owned = true;
    this.end = need;
    this.cur = 0;
    this.rebase(newBase);
  }

  private rebase(lsn: bigint): void {
    if (lsn > MAX_BASE) throw new Error(`WAL position ${formatLsn(lsn)} is beyond what the decoder supports (LSNs below 2^53 - 2^40, 8 PiB of WAL)`);
    this.base = lsn;
    this.baseNum = Number(lsn);
    this.basePageOff = Number(lsn % this.pageSizeBig);
    this.baseSegOff = Number(lsn % this.segSizeBig);
  }

  /** LSN of a window position, as a number (exact: the base is below 2^53 - 2^40). */
  protected lsnAt(pos: number): number {
    return this.baseNum + pos;
  }

  protected lsnText(pos: number): string {
    return formatLsn(this.baseNum + pos);
  }
}
