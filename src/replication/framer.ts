// Splits the backend byte stream into whole protocol messages (type byte,
// int32 length, body). A message inside one socket chunk is returned as a
// view of that chunk (Node gives each read a fresh buffer, so views stay
// valid); only messages spanning chunks are copied.

const EMPTY = Buffer.alloc(0);
// walsender messages are at most ~128 KiB (MAX_SEND_SIZE); 16 MiB leaves room for
// any reply to a command (TIMELINE_HISTORY) while bounding what a bad server can make us buffer.
const MAX_MESSAGE = 16 * 1024 * 1024;
/** nextParts(): bytes guaranteed in the first part (message header + XLogData header = 30). */
export const PREFIX = 64;

export class Framer {
  private chunks: Buffer[] = [];
  private head: Buffer = EMPTY; // chunks[0], with off consumed
  private off = 0;
  private avail = 0;

  /** Bytes received but not yet returned as whole messages. */
  get pendingBytes(): number {
    return this.avail;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.avail === 0) {
      this.head = chunk;
      this.off = 0;
    } else this.chunks.push(chunk);
    this.avail += chunk.length;
  }

  /** The next whole message (header included), or null until more bytes arrive. */
  next(): Buffer | null {
    if (this.avail < 5) return null;
    if (this.head.length - this.off < 5) this.merge(5);
    const total = this.head.readUInt32BE(this.off + 1) + 1;
    // walsender messages are at most ~128 KiB; anything huge is corruption
    if (total < 5 || total > MAX_MESSAGE) throw new Error(`protocol: message length ${total - 1} is invalid; is this a PostgreSQL server?`);
    if (this.avail < total) return null;
    if (this.head.length - this.off < total) this.merge(total);
    const frame = this.head.subarray(this.off, this.off + total);
    this.off += total;
    this.avail -= total;
    if (this.off === this.head.length) {
      this.head = this.chunks.shift() ?? EMPTY;
      this.off = 0;
    }
    return frame;
  }

  /**
   * The next whole message as views of the chunks it arrived in, never copied
   * whole: a 128 KiB XLogData message read in 64 KiB pieces would otherwise be
   * copied once more, doubling the garbage a fast stream makes. The first part
   * holds at least the first PREFIX bytes (the headers), copied if need be.
   */
  nextParts(): Buffer[] | null {
    if (this.avail < 5) return null;
    if (this.head.length - this.off < 5) this.merge(5);
    const total = this.head.readUInt32BE(this.off + 1) + 1;
    if (total < 5 || total > MAX_MESSAGE) throw new Error(`protocol: message length ${total - 1} is invalid; is this a PostgreSQL server?`);
    if (this.avail < total) return null;
    if (this.head.length - this.off >= total) return [this.next()!];
    const parts: Buffer[] = [];
    for (let left = total; left > 0; ) {
      const n = Math.min(left, this.head.length - this.off);
      parts.push(this.head.subarray(this.off, this.off + n));
      this.off += n;
      this.avail -= n;
      left -= n;
      if (this.off === this.head.length) {
        this.head = this.chunks.shift() ?? EMPTY;
        this.off = 0;
      }
    }
    if (parts[0]!.length >= PREFIX) return parts;
    // Move the first PREFIX bytes into one small buffer.
    const first = Buffer.allocUnsafe(Math.min(PREFIX, total));
    let got = 0;
    while (got < first.length) {
      const p = parts[0]!;
      const n = Math.min(p.length, first.length - got);
      p.copy(first, got, 0, n);
      got += n;
      if (n === p.length) parts.shift();
      else parts[0] = p.subarray(n);
    }
    parts.unshift(first);
    return parts;
  }

  // Makes head hold at least n unconsumed bytes by copying following chunks in.
  private merge(n: number): void {
    const parts = [this.head.subarray(this.off)];
    let have = parts[0]!.length;
    while (have < n) {
      const c = this.chunks.shift()!;
      parts.push(c);
      have += c.length;
    }
    this.head = Buffer.concat(parts, have);
    this.off = 0;
  }
}
