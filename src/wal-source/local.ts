// Reads WAL from the follower's own pg_wal: needs no walsender, and is the
// fallback when the upstream no longer has the WAL we ask for. Each read opens
// the segment, reads and closes it at once, so no WAL file is ever held open
// (a held file blocked unmounts for pg_prefaulter).
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { segmentName } from '../wal/segments.ts';
import { sleep } from '../sleep.ts';
import type { WalChunk, WalSource } from './source.ts';

const MAX_READ = 1 << 20;

export interface LocalSourceOptions {
  pgWalDir: string;
  startLsn: bigint;
  timeline: number;
  segmentSize: number;
  pollIntervalMs: number;
  /** Bytes below this LSN are complete on disk (the follower's receive LSN); null: unknown. */
  limit: () => bigint | null;
  signal: AbortSignal;
  /** Lists pg_wal (default fs readdir; tests count the listings). */
  listDir?: (dir: string) => Promise<string[]>;
}

export class LocalSource implements WalSource {
  readonly kind = 'local' as const;
  readonly started = true;
  private closed = false;
  private timeline: number;
  private pos: bigint;
  /** rewind() was called: read from pos again, after a poll interval (the bytes were not written yet). */
  private rewound = false;
  /**
   * The file last found for a segment: reads go on in it without listing
   * pg_wal again (a listing per read was 21 ms of a crash recovery's 720 ms
   * of agent CPU with a few hundred segments in pg_wal). Listed again for
   * another segment, at the end of written WAL (a rewind or an empty read:
   * where a newer timeline's copy of the segment shows up) and when the
   * file went away (recycled).
   */
  private found: { segNo: bigint; path: string } | null = null;

  constructor(private opts: LocalSourceOptions) {
    this.timeline = opts.timeline;
    this.pos = opts.startLsn;
  }

  /**
   * The decoder found bytes not written yet from `lsn` on (zeros, or a
   * recycled segment's older pages: the end of WAL while PostgreSQL recovers,
   * or WAL still arriving): read from there again after a poll interval.
   */
  rewind(lsn: bigint): void {
    this.pos = lsn;
    this.rewound = true;
    this.found = null;
  }

  upstreamEnd(): bigint | null {
    return this.opts.limit();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WalChunk> {
    const { segmentSize, signal } = this.opts;
    const seg = BigInt(segmentSize);
    while (!this.closed && !signal.aborted) {
      if (this.rewound) {
        this.rewound = false;
        await sleep(this.opts.pollIntervalMs, signal);
        continue;
      }
      const pos = this.pos;
      const limit = this.opts.limit();
      if (limit === null || limit <= pos) {
        await sleep(this.opts.pollIntervalMs, signal);
        continue;
      }
      const segNo = pos / seg;
      const offset = Number(pos % seg);
      const want = Math.min(Number(limit - pos), segmentSize - offset, MAX_READ);
      const data = await this.read(segNo, offset, want);
      if (!data || data.length === 0) {
        this.found = null;
        await sleep(this.opts.pollIntervalMs, signal);
        continue;
      }
      this.pos = pos + BigInt(data.length);
      yield { lsn: pos, data };
    }
  }

  private async read(segNo: bigint, offset: number, length: number): Promise<Buffer | null> {
    const fh = await this.openSegment(segNo);
    if (!fh) return null;
    try {
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /** The segment's file, open: the one found last while it is still there, else looked for in pg_wal. */
  private async openSegment(segNo: bigint): Promise<FileHandle | null> {
    if (this.found?.segNo === segNo) {
      try {
        return await open(this.found.path, 'r');
      } catch {
        // recycled or removed since it was found: look again
      }
    }
    const file = await this.findSegment(segNo);
    this.found = file === null ? null : { segNo, path: file };
    return file === null ? null : open(file, 'r');
  }

  // The segment is normally on our timeline; after a switch the follower
  // writes it under the newer timeline's name, so take the newest one present.
  private async findSegment(segNo: bigint): Promise<string | null> {
    const { pgWalDir, segmentSize } = this.opts;
    const suffix = segmentName(this.timeline, segNo, segmentSize).slice(8);
    let best: string | null = null;
    let bestTli = -1;
    let names: string[];
    try {
      names = await (this.opts.listDir ?? readdir)(pgWalDir);
    } catch {
      return null;
    }
    for (const name of names) {
      if (name.length !== 24 || !name.endsWith(suffix)) continue;
      const tli = parseInt(name.slice(0, 8), 16);
      if (tli >= this.timeline && tli > bestTli) {
        bestTli = tli;
        best = name;
      }
    }
    if (best && bestTli !== this.timeline) this.timeline = bestTli;
    return best ? join(pgWalDir, best) : null;
  }
}
