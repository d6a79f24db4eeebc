// Records too large to hold whole. Their header chain (every block reference sits there,
// before any block or main data) is kept; the rest is checksummed as it streams past and
// dropped. Real records with block references stay far below the limit (33 blocks of at
// most 8 KiB); what exceeds it is main data (logical messages, huge commit records),
// which prefaulting does not need.
import { u32, u64 } from './bytes.ts';
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from './crc32c.ts';
import { SIZE_OF_XLOG_RECORD, XL_CRC_OFFSET } from './format.ts';
import { formatLsn } from '../lsn.ts';
import { decodeRecord } from './record.ts';
import { validRmgr } from './rmgr.ts';
import type { WalRecord } from './types.ts';

/** Records larger than this are streamed past, not held. */
export const BIG_RECORD_BYTES = 1024 * 1024;
/** How much of a big record is kept: the header chain is at most ~1 KiB (33 block headers). */
const BIG_HEAD_BYTES = 4096;

/** One big record being streamed past: its head, its running CRC, how much has passed. */
export class BigRecord {
  /** record bytes streamed past so far (page headers not counted) */
  got = 0;
  private crc = CRC32C_INIT;
  /** the record's first BIG_HEAD_BYTES bytes */
  private readonly head = new Uint8Array(BIG_HEAD_BYTES);

  constructor(
    readonly lsn: number,
    readonly totLen: number,
  ) {}

  get complete(): boolean {
    return this.got === this.totLen;
  }

  /** The record's next n bytes, d[from, from + n) (a piece within one page). */
  take(d: Uint8Array, from: number, n: number, verifyCrc: boolean): void {
    const got = this.got;
    if (got < BIG_HEAD_BYTES) this.head.set(d.subarray(from, from + Math.min(n, BIG_HEAD_BYTES - got)), got);
    // The CRC covers the bytes after the 24-byte header, then the header up to xl_crc.
    const skip = Math.max(got, SIZE_OF_XLOG_RECORD) - got;
    if (verifyCrc && skip < n) this.crc = crc32cUpdate(this.crc, d, from + skip, from + n);
    this.got = got + n;
  }

  /**
   * All of it has streamed past: the checks finishRecord makes on a whole record (rmgr,
   * xl_prev against prevLsn, CRC), then its header chain decoded. A message when bad.
   */
  finish(prevLsn: number | null, endLsn: number, major: number | null, blockSize: number, verifyCrc: boolean): WalRecord | string {
    const { head, lsn } = this;
    const rmid = head[17]!;
    if (!validRmgr(rmid, major)) return `invalid resource manager ID ${rmid} at ${formatLsn(lsn)}`;
    const prev = u32(head, 12) * 0x100000000 + u32(head, 8);
    if ((prevLsn !== null && prev !== prevLsn) || (prevLsn === null && prev >= lsn)) {
      return `record with incorrect prev-link ${formatLsn(u64(head, 8))} at ${formatLsn(lsn)}`;
    }
    if (verifyCrc && crc32cFinish(crc32cUpdate(this.crc, head, 0, XL_CRC_OFFSET)) !== u32(head, XL_CRC_OFFSET)) {
      return `incorrect resource manager data checksum in record at ${formatLsn(lsn)}`;
    }
    const rec = decodeRecord(head, 0, this.totLen, lsn, endLsn, prev, major ?? 18, blockSize, BIG_HEAD_BYTES);
    return typeof rec === 'string' ? `${rec} in record at ${formatLsn(lsn)}` : rec;
  }
}
