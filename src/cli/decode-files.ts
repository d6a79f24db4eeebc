// The decode command's loop: WAL segment files read in pieces (segment-pieces.ts),
// decoded from a start LSN until a record at or after an end LSN, the end of written
// WAL, or the last file. Shared by the sequential command and
// the parallel --stats parts (decode-parallel.ts).
import { WalDecoder, formatLsn, isDecodeError, type SegmentFile, type WalRecord } from '../wal/index.ts';
import { SegmentPieces, type SegmentPiece } from './segment-pieces.ts';

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
  /** A decoded record before `end`, overwritten by the next one (use it before returning); a promise to wait for (output backpressure), or undefined. */
  record(r: WalRecord): Promise<void> | undefined;
  /** A decode problem, worded for stderr; false stops decoding. */
  problem(message: string): boolean;
  /** After each file's records (flush output); true stops decoding (the reader went away). */
  fileDone(): Promise<boolean>;
}

export interface DecodeOutcome {
  problems: number;
  /** LSN of the first record decoded (at or after `end` too), null if none (a number, as WalRecord.lsn) */
  firstLsn: number | null;
  /** LSN of the record at or after `end` that stopped decoding, null if none did */
  stopLsn: number | null;
  /** decoding stopped where written WAL ends (zeros, or a recycled segment's old pages) */
  endOfWal: boolean;
  /** a file could not be read: decoding stopped there */
  readFailed: boolean;
}

export async function decodeFiles(range: DecodeRange, sink: DecodeSink): Promise<DecodeOutcome> {
  const { files, segSize } = range;
  const end = range.end === null ? null : Number(range.end); // compared with record LSNs (numbers)
  const segBig = BigInt(segSize);
  const outcome: DecodeOutcome = { problems: 0, firstLsn: null, stopLsn: null, endOfWal: false, readFailed: false };
  const problem = (message: string): boolean => {
    outcome.problems++;
    return sink.problem(message);
  };
  // Every sink is done with a record before the next: one record object, reused.
  const decoder = new WalDecoder({ startLsn: range.start, segmentSize: segSize, blockSize: range.blockSize, reuseRecords: true });
  let expectSeg = files[0]!.segNo;
  const pieces = new SegmentPieces(files, Number(range.start - files[0]!.segNo * segBig));
  // A piece's buffer is reused once the decoder is past its last byte (it reads a pushed chunk in place until then).
  const inUse: { buf: Buffer; end: bigint }[] = [];
  try {
    for (;;) {
      let piece: SegmentPiece | null;
      try {
        piece = await pieces.next();
      } catch (e) {
        problem((e as Error).message);
        outcome.readFailed = true;
        return outcome;
      }
      if (piece === null) break;
      const f = files[piece.file]!;
      const fileStart = f.segNo * segBig;
      if (piece.offset === 0) {
        if (f.segNo !== expectSeg) {
          if (!problem(`WAL segments ${expectSeg.toString(16).toUpperCase()} to ${(f.segNo - 1n).toString(16).toUpperCase()} are missing; continuing at ${f.path}`)) return outcome;
          decoder.reset(fileStart);
        }
        if (decoder.inputLsn < fileStart) {
          if (!problem(`WAL ends at ${formatLsn(decoder.inputLsn)} before the segment boundary (short segment file?); continuing at ${f.path}`)) return outcome;
          decoder.reset(fileStart);
        }
      }
      expectSeg = f.segNo + 1n;
      const pieceEnd = fileStart + BigInt(piece.offset + piece.data.length);
      inUse.push({ buf: piece.buffer, end: pieceEnd });
      decoder.push(piece.data);
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
      const decoded = decoder.nextRecordLsn;
      for (let k = inUse.length - 1; k >= 0; k--) {
        if (inUse[k]!.end <= decoded) pieces.reuse(inUse.splice(k, 1)[0]!.buf);
      }
      // The decoder rewinds its input to the first unwritten byte: WAL ends inside this piece.
      if (decoder.inputLsn < pieceEnd) {
        await sink.fileDone();
        outcome.endOfWal = true;
        return outcome;
      }
      if (piece.last && (await sink.fileDone())) return outcome;
    }
  } finally {
    await pieces.close();
  }
  if (decoder.bufferedBytes > 0) {
    problem(`error at ${formatLsn(decoder.nextRecordLsn)}: the WAL given ends inside a record (${decoder.bufferedBytes} bytes of it present)`);
  }
  return outcome;
}
