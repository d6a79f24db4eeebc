// Segment files read as a stream of pieces (2 MiB each) into a few reused buffers:
// decoding starts after the first piece, not the first 16 MiB, and the buffers stay in
// the cache and need no fresh pages from the kernel (three 16 MiB segment buffers cost
// ~12 000 page faults). AHEAD reads are in flight at once, each started without waiting
// for the one before: a read chained to the previous one's completion only starts when
// the decoder yields to the event loop, so reading and decoding took turns (the decoder
// waited ~50 ms of ~270 for 169 MiB of cached WAL).
import { closeSync, fstatSync, openSync, read } from 'node:fs';
import { Fifo } from '../fifo.ts';
import type { SegmentFile } from '../wal/index.ts';

const PIECE = 2 * 1024 * 1024;
const AHEAD = 3;

export interface SegmentPiece {
  /** index of the file in the list */
  file: number;
  /** the bytes, from `offset` in the file */
  data: Buffer;
  offset: number;
  /** the file's last piece (its end, or the end of what it holds) */
  last: boolean;
  /** the buffer data is in: give it back with reuse() once decoded */
  buffer: Buffer;
}

interface OpenSegment {
  fd: number;
  size: number;
  /** reads of it not finished yet; closed when 0 and no more are planned */
  reading: number;
  planned: boolean;
}

export class SegmentPieces {
  private spare: Buffer[] = [];
  private readonly inFlight = new Fifo<Promise<SegmentPiece | null>>();
  private readonly open = new Map<number, OpenSegment>();
  /** the next piece to read: file index and offset */
  private file = 0;
  private offset: number;

  /** firstOffset: where to start in the first file. */
  constructor(
    private readonly files: SegmentFile[],
    firstOffset: number,
  ) {
    this.offset = firstOffset;
    this.fill();
  }

  /** The next piece in order, or null after the last file. Rejects on a read error. */
  async next(): Promise<SegmentPiece | null> {
    const p = await this.inFlight.shift()!;
    if (p !== null && p.last && p.offset + p.data.length < (this.open.get(p.file)?.size ?? 0)) await this.dropRestOf(p.file);
    this.fill();
    return p;
  }

  reuse(buffer: Buffer): void {
    this.spare.push(buffer);
  }

  async close(): Promise<void> {
    while (this.inFlight.length > 0) await this.inFlight.shift()!.catch(() => null);
    this.file = this.files.length;
    for (const [i, s] of this.open) {
      s.planned = false;
      this.closeIfDone(i, s);
    }
  }

  private fill(): void {
    while (this.inFlight.length < AHEAD) {
      const p = this.readNext();
      p.catch(() => {}); // awaited (and reported) in turn
      this.inFlight.push(p);
      if (this.file >= this.files.length) return;
    }
  }

  /** Starts the read of the next piece (null past the last file). */
  private readNext(): Promise<SegmentPiece | null> {
    const i = this.file;
    const f = this.files[i];
    if (!f) return Promise.resolve(null);
    let seg: OpenSegment;
    try {
      seg = this.openSegment(i, f);
    } catch (e) {
      this.file = this.files.length; // nothing after a failed file
      return Promise.reject(new Error(`cannot read ${f.path}: ${(e as Error).message}`));
    }
    const offset = this.offset;
    const want = Math.max(0, Math.min(PIECE, seg.size - offset));
    const last = offset + want >= seg.size;
    if (last) {
      seg.planned = false;
      this.file++;
      this.offset = 0;
    } else this.offset += want;
    const buffer = this.spare.pop() ?? Buffer.allocUnsafe(PIECE);
    seg.reading++;
    return this.readFully(seg.fd, buffer, want, offset).then(
      (got) => {
        seg.reading--;
        this.closeIfDone(i, seg);
        // shrank while we read: keep what is there, it is the file's end
        return { file: i, data: buffer.subarray(0, got), offset, last: last || got < want, buffer };
      },
      (e: Error) => {
        seg.reading--;
        this.closeIfDone(i, seg);
        throw new Error(`cannot read ${f.path}: ${e.message}`);
      },
    );
  }

  private openSegment(i: number, f: SegmentFile): OpenSegment {
    let seg = this.open.get(i);
    if (seg === undefined) {
      const fd = openSync(f.path, 'r');
      let size: number;
      try {
        size = fstatSync(fd).size;
      } catch (e) {
        closeSync(fd);
        throw e;
      }
      seg = { fd, size, reading: 0, planned: true };
      this.open.set(i, seg);
    }
    return seg;
  }

  private async readFully(fd: number, buffer: Buffer, want: number, offset: number): Promise<number> {
    let got = 0;
    while (got < want) {
      const n = await new Promise<number>((resolve, reject) => read(fd, buffer, got, want - got, offset + got, (e, bytes) => (e ? reject(e) : resolve(bytes))));
      if (n === 0) break;
      got += n;
    }
    return got;
  }

  /** A file came back shorter than planned: its later pieces (in flight) are not the file any more. */
  private async dropRestOf(file: number): Promise<void> {
    while (this.inFlight.length > 0) {
      const head = this.inFlight.peek()!;
      const p = await head.catch(() => null);
      if (p === null || p.file !== file) return;
      this.inFlight.shift();
      this.reuse(p.buffer);
    }
  }

  private closeIfDone(i: number, seg: OpenSegment): void {
    if (seg.planned || seg.reading > 0) return;
    this.open.delete(i);
    closeSync(seg.fd);
  }
}
