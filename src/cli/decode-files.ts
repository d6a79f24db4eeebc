// The decode command's loop: WAL segment files read in turn (the next read while this
// one decodes, buffers reused), decoded from a start LSN until a record at or after an
// end LSN, the end of written WAL, or the last file. Shared by the sequential command and
// the parallel --stats parts (decode-parallel.ts).
import { WalDecoder, formatLsn, isDecodeError, readSegmentFile, type SegmentFile, type WalRecord } from '../wal/index.ts';

export interface DecodeRange {
  files: SegmentFile[];
  segSize: number;
  blockSize: number;
  /** first record or page start to decode (inside the first file) */
  start: bigint;
  /** stop before the first record starting at or after this; null: decode to the end */
  end: bigint | null;
}

export interface DecodeSink {
  /** A decoded record before `end`; a promise to wait for (output backpressure), or undefined. */
  record(r: WalRecord): Promise<void> | undefined;
  /** A decode problem, worded for stderr; false stops decoding. */
  problem(message: string): boolean;
  /** After each file's records (flush output); true stops decoding (the reader went away). */
  fileDone(): Promise<boolean>;
}

export interface DecodeOutcome {
  problems: number;
  /** LSN of the first record decoded (at or after `end` too), null if none */
  firstLsn: bigint | null;
  /** LSN of the record at or after `end` that stopped decoding, null if none did */
  stopLsn: bigint | null;
  /** decoding stopped where written WAL ends (zeros, or a recycled segment's old pages) */
  endOfWal: boolean;
  /** a file could not be read: decoding stopped there */
  readFailed: boolean;
}

export async function decodeFiles(range: DecodeRange, sink: DecodeSink): Promise<DecodeOutcome> {
  const { files, segSize, end } = range;
  const segBig = BigInt(segSize);
  const outcome: DecodeOutcome = { problems: 0, firstLsn: null, stopLsn: null, endOfWal: false, readFailed: false };
  const problem = (message: string): boolean => {
    outcome.problems++;
    return sink.problem(message);
  };
  const decoder = new WalDecoder({ startLsn: range.start, segmentSize: segSize, blockSize: range.blockSize });
  let expectSeg = files[0]!.segNo;
  // Segment buffers are reused once the decoder is past their last byte (it reads a pushed
  // chunk in place until then): 16 MiB fresh from the kernel for every file cost page
  // faults and full GCs (external memory) for nothing.
  const spare: Buffer[] = [];
  const inUse: { buf: Buffer; end: bigint }[] = [];
  const recycle = (): void => {
    const decoded = decoder.nextRecordLsn;
    for (let k = inUse.length - 1; k >= 0; k--) {
      if (inUse[k]!.end <= decoded) spare.push(inUse.splice(k, 1)[0]!.buf);
    }
  };
  // Read the next file while decoding this one.
  const read = (i: number): Promise<Buffer> | null => {
    const f = files[i];
    if (!f) return null;
    const p = readSegmentFile(f.path, spare.pop());
    p.catch(() => {}); // awaited (and reported) in turn
    return p;
  };
  let reading = read(0);
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    if (f.segNo !== expectSeg) {
      if (!problem(`WAL segments ${expectSeg.toString(16).toUpperCase()} to ${(f.segNo - 1n).toString(16).toUpperCase()} are missing; continuing at ${f.path}`)) return outcome;
      decoder.reset(f.segNo * segBig);
    }
    expectSeg = f.segNo + 1n;
    let data: Buffer;
    try {
      data = await reading!;
      inUse.push({ buf: data, end: f.segNo * segBig + BigInt(data.length) });
      recycle();
      reading = read(i + 1);
    } catch (e) {
      problem(`cannot read ${f.path}: ${(e as Error).message}`);
      outcome.readFailed = true;
      return outcome;
    }
    const fileStart = f.segNo * segBig;
    const fileEnd = fileStart + BigInt(data.length);
    if (decoder.inputLsn < fileStart) {
      if (!problem(`WAL ends at ${formatLsn(decoder.inputLsn)} before the segment boundary (short segment file?); continuing at ${f.path}`)) return outcome;
      decoder.reset(fileStart);
    }
    const skip = Number(decoder.inputLsn - fileStart);
    if (skip > 0) data = data.subarray(Math.min(skip, data.length));
    decoder.push(data);
    for (let r = decoder.next(); r !== null; r = decoder.next()) {
      if (isDecodeError(r)) {
        if (!problem(`error at ${formatLsn(r.lsn)}: ${r.message}`)) return outcome;
        continue;
      }
      outcome.firstLsn ??= r.lsn;
      if (end !== null && r.lsn >= end) {
        outcome.stopLsn = r.lsn;
        await sink.fileDone();
        return outcome;
      }
      const wait = sink.record(r);
      if (wait !== undefined) await wait;
    }
    if (await sink.fileDone()) return outcome;
    // The decoder rewinds its input to the first unwritten byte: WAL ends inside this file.
    if (decoder.inputLsn < fileEnd) {
      outcome.endOfWal = true;
      return outcome;
    }
  }
  if (decoder.bufferedBytes > 0) {
    problem(`error at ${formatLsn(decoder.nextRecordLsn)}: the WAL given ends inside a record (${decoder.bufferedBytes} bytes of it present)`);
  }
  return outcome;
}
