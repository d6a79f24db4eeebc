// Segment files read as a stream of pieces (2 MiB each, the next one read while this one
// is decoded) into a few reused buffers: decoding starts after the first piece, not the
// first 16 MiB, and the buffers stay in the cache and need no fresh pages from the kernel
// (three 16 MiB segment buffers cost ~12 000 page faults).
import { open, type FileHandle } from 'node:fs/promises';
import type { SegmentFile } from '../wal/index.ts';

const PIECE = 2 * 1024 * 1024;

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

export class SegmentPieces {
  private spare: Buffer[] = [];
  private fh: FileHandle | null = null;
  private fhFile = -1;
  private size = 0;
  private ahead: Promise<SegmentPiece | null>;

  /** firstOffset: where to start in the first file. */
  constructor(
    private readonly files: SegmentFile[],
    firstOffset: number,
  ) {
    this.ahead = this.read(0, firstOffset);
  }

  /** The next piece in order (the one after it is then read), or null after the last file. Rejects on a read error. */
  async next(): Promise<SegmentPiece | null> {
    const p = await this.ahead;
    this.ahead = p === null ? Promise.resolve(null) : p.last ? this.read(p.file + 1, 0) : this.read(p.file, p.offset + p.data.length);
    this.ahead.catch(() => {}); // awaited (and reported) in turn
    return p;
  }

  reuse(buffer: Buffer): void {
    this.spare.push(buffer);
  }

  async close(): Promise<void> {
    await this.ahead.catch(() => null);
    await this.fh?.close();
    this.fh = null;
  }

  private async read(file: number, offset: number): Promise<SegmentPiece | null> {
    try {
      return await this.readPiece(file, offset);
    } catch (e) {
      throw new Error(`cannot read ${this.files[file]?.path}: ${(e as Error).message}`);
    }
  }

  private async readPiece(file: number, offset: number): Promise<SegmentPiece | null> {
    const f = this.files[file];
    if (!f) {
      await this.fh?.close();
      this.fh = null;
      return null;
    }
    if (this.fhFile !== file) {
      await this.fh?.close();
      this.fh = null;
      this.fh = await open(f.path, 'r');
      this.fhFile = file;
      this.size = (await this.fh.stat()).size;
    }
    const buffer = this.spare.pop() ?? Buffer.allocUnsafe(PIECE);
    const want = Math.max(0, Math.min(PIECE, this.size - offset));
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.fh!.read(buffer, got, want - got, offset + got);
      if (bytesRead === 0) break; // shrank while we read: keep what is there
      got += bytesRead;
    }
    return { file, data: buffer.subarray(0, got), offset, last: got < PIECE || offset + got >= this.size, buffer };
  }
}
