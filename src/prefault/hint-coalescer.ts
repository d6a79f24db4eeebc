// Adjacent blocks of one file hinted with one posix_fadvise(WILLNEED) over the whole run
// instead of one call per block: bulk loads, sequential scans rewritten by UPDATE, index
// builds and relation extension touch block after block. The run is held until a block
// that does not extend it arrives, it reaches maxBytes, or the current task yields (a
// microtask), so a hint is never held across an await of the caller. The fd is held with
// a reference meanwhile, so an eviction or a drop cannot close it (and let its number be
// reused) before the hint goes out.
import type { OpenFile } from './file-handles.ts';
import type { WillneedHint } from './willneed.ts';

/** Result of one hint call over `blocks` adjacent blocks from offset: errno 0 = accepted. */
export type HintOutcome = (errno: number, file: OpenFile, offset: number, blocks: number) => void;

export class HintCoalescer {
  /** posix_fadvise calls made */
  calls = 0;
  private hint: WillneedHint | null;
  private file: OpenFile | null = null;
  private start = 0;
  private end = 0;
  private scheduled = false;
  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flush();
  };

  constructor(
    hint: WillneedHint | null,
    private readonly blockSize: number,
    private readonly maxBytes: number,
    private readonly release: (f: OpenFile) => void,
    private readonly done: HintOutcome,
  ) {
    this.hint = hint;
  }

  /** Hints from now on go through this function (the held run goes out first, through the old one). */
  setHint(hint: WillneedHint | null): void {
    this.flush();
    this.hint = hint;
  }

  /** Hint the block at offset of file (a run of one block if it does not extend the held run). */
  add(file: OpenFile, offset: number): void {
    if (file === this.file && this.end - this.start < this.maxBytes) {
      if (offset === this.end) {
        this.end += this.blockSize;
        return;
      }
      if (offset + this.blockSize === this.start) {
        this.start = offset;
        return;
      }
    }
    this.flush();
    file.refs++;
    this.file = file;
    this.start = offset;
    this.end = offset + this.blockSize;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushSoon);
    }
  }

  /** Give the held run to the kernel now. */
  flush(): void {
    const f = this.file;
    if (f === null) return;
    this.file = null;
    const length = this.end - this.start;
    this.calls++;
    const errno = this.hint !== null ? this.hint(f.fd, this.start, length) : 0;
    this.done(errno, f, this.start, length / this.blockSize);
    this.release(f);
  }
}
