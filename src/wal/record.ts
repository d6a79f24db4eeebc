// One assembled XLogRecord -> WalRecord: the header chain of DecodeXLogRecord
// (xlogreader.c) with its cross-checks, then the relation events of the main data.
import { u16, u32 } from './bytes.ts';
import { relationEvents } from './events.ts';
import {
  BKPBLOCK_FORK_MASK,
  BKPBLOCK_HAS_DATA,
  BKPBLOCK_HAS_IMAGE,
  BKPBLOCK_SAME_REL,
  BKPBLOCK_WILL_INIT,
  BKPIMAGE_HAS_HOLE,
  SIZE_OF_XLOG_RECORD,
  XLR_BLOCK_ID_DATA_LONG,
  XLR_BLOCK_ID_DATA_SHORT,
  XLR_BLOCK_ID_ORIGIN,
  XLR_BLOCK_ID_TOPLEVEL_XID,
  XLR_MAX_BLOCK_ID,
  imageBits,
} from './format.ts';
import { rmgrName } from './rmgr.ts';
import type { BlockRef, RelationEvent, WalRecord } from './types.ts';

const SHORT_HEADER = 'record header chain runs past the record length';

/** Shared by every record without block references (commits, most xact/standby/xlog records). */
const NO_BLOCKS: BlockRef[] = [];

/**
 * One WalRecord and its BlockRefs, overwritten by each decodeRecord given it: for a
 * reader done with each record before the next (WalDecoderOptions.reuseRecords), nothing
 * is allocated per record.
 */
export class RecordSlot {
  readonly rec: WalRecord = newRecord([], []);
  /** BlockRefs by position in the record (up to 33), made once each */
  readonly blocks: BlockRef[] = [];
}

function newRecord(blocks: BlockRef[], events: RelationEvent[]): WalRecord {
  return { lsn: 0, endLsn: 0, prevLsn: 0, xid: 0, rmgr: 0, rmgrName: '', info: 0, totalLength: 0, blocks, events };
}

function newBlock(): BlockRef {
  return { id: 0, spcOid: 0, dbOid: 0, relNumber: 0, fork: 0, block: 0, hasImage: false, applyImage: false, willInit: false, dataLength: 0 };
}

/**
 * Decodes the record in buf[off, off+totLen) (header included, CRC already checked).
 * blockSize is the server's blockSize, which full-page images are checked against.
 * Returns a message instead of throwing when the header chain is inconsistent.
 * have < totLen: buf holds only the record's first `have` bytes (a record too large to
 * hold whole): the header chain is decoded from them and the main data is not read.
 * slot: fill and return slot.rec instead of new objects.
 */
export function decodeRecord(
  buf: Uint8Array,
  off: number,
  totLen: number,
  lsn: number,
  endLsn: number,
  prevLsn: number,
  majorVersion: number,
  blockSize: number,
  have = totLen,
  slot: RecordSlot | null = null,
): WalRecord | string {
  const bits = imageBits(majorVersion);
  const end = off + totLen;
  const lim = off + have; // header fields must lie before this
  let p = off + SIZE_OF_XLOG_RECORD;
  let datatotal = 0;
  let mainDataLen = 0;
  let maxBlockId = -1;
  let spc = 0,
    db = 0,
    rel = 0,
    haveRel = false;
  // Most records reference one block: hold it until a second one needs an array.
  let first: BlockRef | null = null;
  let blocks: BlockRef[] | null = null;
  let nBlocks = 0;
  while (end - p > datatotal) {
    if (p >= lim) return SHORT_HEADER;
    const blockId = buf[p++]!;
    if (blockId === XLR_BLOCK_ID_DATA_SHORT) {
      if (p + 1 > lim) return SHORT_HEADER;
      mainDataLen = buf[p++]!;
      datatotal += mainDataLen;
      break; // by convention the main data fragment is always last
    } else if (blockId === XLR_BLOCK_ID_DATA_LONG) {
      if (p + 4 > lim) return SHORT_HEADER;
      mainDataLen = u32(buf, p);
      p += 4;
      datatotal += mainDataLen;
      break;
    } else if (blockId === XLR_BLOCK_ID_ORIGIN) {
      p += 2;
    } else if (blockId === XLR_BLOCK_ID_TOPLEVEL_XID) {
      p += 4;
    } else if (blockId <= XLR_MAX_BLOCK_ID) {
      if (blockId <= maxBlockId) return `out-of-order block_id ${blockId}`;
      maxBlockId = blockId;
      if (p + 3 > lim) return SHORT_HEADER;
      const forkFlags = buf[p]!;
      const dataLength = u16(buf, p + 1);
      p += 3;
      const hasData = (forkFlags & BKPBLOCK_HAS_DATA) !== 0;
      if (hasData && dataLength === 0) return `BKPBLOCK_HAS_DATA set, but no data included (block_id ${blockId})`;
      if (!hasData && dataLength !== 0) return `BKPBLOCK_HAS_DATA not set, but data length is ${dataLength} (block_id ${blockId})`;
      datatotal += dataLength;
      const hasImage = (forkFlags & BKPBLOCK_HAS_IMAGE) !== 0;
      let applyImage = false;
      if (hasImage) {
        if (p + 5 > lim) return SHORT_HEADER;
        const bimgLen = u16(buf, p);
        const holeOffset = u16(buf, p + 2);
        const bimgInfo = buf[p + 4]!;
        p += 5;
        applyImage = (bimgInfo & bits.apply) !== 0;
        const compressed = (bimgInfo & bits.compressedMask) !== 0;
        const hasHole = (bimgInfo & BKPIMAGE_HAS_HOLE) !== 0;
        let holeLength: number;
        if (compressed) {
          if (hasHole) {
            if (p + 2 > lim) return SHORT_HEADER;
            holeLength = u16(buf, p);
            p += 2;
          } else holeLength = 0;
        } else holeLength = blockSize - bimgLen;
        datatotal += bimgLen;
        if (hasHole && (holeOffset === 0 || holeLength === 0 || bimgLen === blockSize)) {
          return `BKPIMAGE_HAS_HOLE set, but hole offset ${holeOffset} length ${holeLength} block image length ${bimgLen}`;
        }
        if (!hasHole && (holeOffset !== 0 || holeLength !== 0)) {
          return `BKPIMAGE_HAS_HOLE not set, but hole offset ${holeOffset} length ${holeLength}`;
        }
        if (compressed && bimgLen === blockSize) return `BKPIMAGE_COMPRESSED set, but block image length ${bimgLen}`;
        if (!hasHole && !compressed && bimgLen !== blockSize) return `neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block image length is ${bimgLen}`;
      }
      if (!(forkFlags & BKPBLOCK_SAME_REL)) {
        if (p + 12 > lim) return SHORT_HEADER;
        spc = u32(buf, p);
        db = u32(buf, p + 4);
        rel = u32(buf, p + 8);
        p += 12;
        haveRel = true;
      } else if (!haveRel) {
        return `BKPBLOCK_SAME_REL set but no previous rel (block_id ${blockId})`;
      }
      if (p + 4 > lim) return SHORT_HEADER;
      const block = u32(buf, p);
      p += 4;
      // Reused from the slot, or new: one place sets every field (a reused ref keeps nothing of the last record).
      const ref = slot !== null ? (slot.blocks[nBlocks] ??= newBlock()) : newBlock();
      ref.id = blockId;
      ref.spcOid = spc;
      ref.dbOid = db;
      ref.relNumber = rel;
      ref.fork = forkFlags & BKPBLOCK_FORK_MASK;
      ref.block = block;
      ref.hasImage = hasImage;
      ref.applyImage = applyImage;
      ref.willInit = (forkFlags & BKPBLOCK_WILL_INIT) !== 0;
      ref.dataLength = dataLength;
      nBlocks++;
      if (slot !== null) continue;
      if (first === null) first = ref;
      else if (blocks === null) blocks = [first, ref];
      else blocks.push(ref);
    } else {
      return `invalid block_id ${blockId}`;
    }
  }
  if (p > end || end - p !== datatotal) return `record length ${totLen} does not match its headers (header chain ends at ${p - off}, data ${datatotal} bytes)`;
  const info = buf[off + 16]!;
  const rmgr = buf[off + 17]!;
  const events = have < totLen ? [] : relationEvents(rmgr, info, buf, end - mainDataLen, mainDataLen, majorVersion);
  if (typeof events === 'string') return events;
  const r = slot !== null ? slot.rec : newRecord(blocks ?? (first !== null ? [first] : NO_BLOCKS), events);
  r.lsn = lsn;
  r.endLsn = endLsn;
  r.prevLsn = prevLsn;
  r.xid = u32(buf, off + 4);
  r.rmgr = rmgr;
  r.rmgrName = rmgrName(rmgr);
  r.info = info;
  r.totalLength = totLen;
  if (slot !== null) {
    r.events = events;
    const b = r.blocks;
    if (b.length > nBlocks) b.length = nBlocks;
    for (let i = 0; i < nBlocks; i++) b[i] = slot.blocks[i]!;
  }
  return r;
}

