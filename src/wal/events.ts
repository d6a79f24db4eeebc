// Relation-level events carried by a record's main data: smgr create/truncate,
// database create/drop and the relation files a transaction drops at commit or abort.
import { i32, u32 } from './bytes.ts';
import { RM_DBASE_ID, RM_SMGR_ID, RM_XACT_ID } from './rmgr.ts';
import type { RelationEvent } from './types.ts';

const XLOG_SMGR_CREATE = 0x10;
const XLOG_SMGR_TRUNCATE = 0x20;

const XLOG_XACT_OPMASK = 0x70;
const XLOG_XACT_HAS_INFO = 0x80;
const XLOG_XACT_COMMIT = 0x00;
const XLOG_XACT_ABORT = 0x20;
const XLOG_XACT_COMMIT_PREPARED = 0x30;
const XLOG_XACT_ABORT_PREPARED = 0x40;
const XACT_XINFO_HAS_DBINFO = 1 << 0;
const XACT_XINFO_HAS_SUBXACTS = 1 << 1;
const XACT_XINFO_HAS_RELFILELOCATORS = 1 << 2; // HAS_RELFILENODES before 16, same bit

const NO_EVENTS: RelationEvent[] = [];

/**
 * Events of one record whose main data is buf[off, off+len). Returns a shared empty array
 * when there are none; a string describes main data too short for its own counts.
 */
export function relationEvents(rmgr: number, info: number, buf: Uint8Array, off: number, len: number, majorVersion: number): RelationEvent[] | string {
  if (rmgr === RM_XACT_ID) return xactEvents(info, buf, off, len);
  if (rmgr === RM_SMGR_ID) return smgrEvents(info & 0xf0, buf, off, len);
  if (rmgr === RM_DBASE_ID) return dbaseEvents(info & 0xf0, buf, off, len, majorVersion);
  return NO_EVENTS;
}

function smgrEvents(op: number, b: Uint8Array, off: number, len: number): RelationEvent[] | string {
  if (op === XLOG_SMGR_CREATE) {
    // xl_smgr_create { RelFileLocator rlocator; ForkNumber forkNum; }
    if (len < 16) return `smgr create main data is ${len} bytes, expected 16`;
    return [{ kind: 'smgr-create', spcOid: u32(b, off), dbOid: u32(b, off + 4), relNumber: u32(b, off + 8), fork: i32(b, off + 12) }];
  }
  if (op === XLOG_SMGR_TRUNCATE) {
    // xl_smgr_truncate { BlockNumber blkno; RelFileLocator rlocator; int flags; }
    if (len < 20) return `smgr truncate main data is ${len} bytes, expected 20`;
    return [
      { kind: 'smgr-truncate', spcOid: u32(b, off + 4), dbOid: u32(b, off + 8), relNumber: u32(b, off + 12), blocks: u32(b, off), flags: i32(b, off + 16) },
    ];
  }
  return NO_EVENTS;
}

function dbaseEvents(op: number, b: Uint8Array, off: number, len: number, majorVersion: number): RelationEvent[] | string {
  // 13/14: CREATE 0x00, DROP 0x10. 15+: CREATE_FILE_COPY 0x00, CREATE_WAL_LOG 0x10, DROP 0x20.
  const isCreate = op === 0x00 || (majorVersion >= 15 && op === 0x10);
  const isDrop = majorVersion >= 15 ? op === 0x20 : op === 0x10;
  if (isCreate) {
    // both create records start { Oid db_id; Oid tablespace_id; ... }
    if (len < 8) return `database create main data is ${len} bytes, expected at least 8`;
    return [{ kind: 'db-create', dbOid: u32(b, off), spcOid: u32(b, off + 4) }];
  }
  if (isDrop) {
    // xl_dbase_drop_rec { Oid db_id; int ntablespaces; Oid tablespace_ids[]; }
    if (len < 8) return `database drop main data is ${len} bytes, expected at least 8`;
    const n = i32(b, off + 4);
    if (n < 0 || 8 + n * 4 > len) return `database drop lists ${n} tablespaces but its main data is ${len} bytes`;
    const spcOids: number[] = [];
    for (let i = 0; i < n; i++) spcOids.push(u32(b, off + 8 + i * 4));
    return [{ kind: 'db-drop', dbOid: u32(b, off), spcOids }];
  }
  return NO_EVENTS;
}

function xactEvents(info: number, b: Uint8Array, off: number, len: number): RelationEvent[] | string {
  const op = info & XLOG_XACT_OPMASK;
  if (op !== XLOG_XACT_COMMIT && op !== XLOG_XACT_ABORT && op !== XLOG_XACT_COMMIT_PREPARED && op !== XLOG_XACT_ABORT_PREPARED) return NO_EVENTS;
  if (!(info & XLOG_XACT_HAS_INFO)) return NO_EVENTS; // xact_time only
  // ParseCommitRecord / ParseAbortRecord: xact_time, xinfo, then optional parts in xinfo bit order.
  const end = off + len;
  let p = off + 8;
  if (p + 4 > end) return `transaction record main data is ${len} bytes, too short for its xinfo`;
  const xinfo = u32(b, p);
  p += 4;
  if (!(xinfo & XACT_XINFO_HAS_RELFILELOCATORS)) return NO_EVENTS;
  if (xinfo & XACT_XINFO_HAS_DBINFO) p += 8;
  if (xinfo & XACT_XINFO_HAS_SUBXACTS) {
    if (p + 4 > end) return 'transaction record ends inside its subtransaction list';
    const n = i32(b, p);
    if (n < 0 || p + 4 + n * 4 > end) return `transaction record lists ${n} subtransactions beyond its main data`;
    p += 4 + n * 4;
  }
  if (p + 4 > end) return 'transaction record ends inside its dropped-relation list';
  const nrels = i32(b, p);
  p += 4;
  if (nrels < 0 || p + nrels * 12 > end) return `transaction record lists ${nrels} dropped relations beyond its main data`;
  const rels: { spcOid: number; dbOid: number; relNumber: number }[] = [];
  for (let i = 0; i < nrels; i++, p += 12) rels.push({ spcOid: u32(b, p), dbOid: u32(b, p + 4), relNumber: u32(b, p + 8) });
  return [{ kind: 'rels-dropped', rels }];
}
