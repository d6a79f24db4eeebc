// Public shapes of decoded WAL: one WalRecord per XLogRecord, with every block
// reference as xlogreader.c's DecodeXLogRecord sees it.

/** ForkNumber values of BlockRef.fork (common/relpath.h). */
export const FORK_MAIN = 0,
  FORK_FSM = 1,
  FORK_VM = 2,
  FORK_INIT = 3;

export const FORK_NAMES: readonly string[] = ['main', 'fsm', 'vm', 'init'];

export interface BlockRef {
  /** block_id 0..32 */
  id: number;
  /** RelFileLocator (BKPBLOCK_SAME_REL already resolved) */
  spcOid: number;
  dbOid: number;
  relNumber: number;
  /** 0 main, 1 fsm, 2 vm, 3 init */
  fork: number;
  /** BlockNumber (uint32) */
  block: number;
  /** BKPBLOCK_HAS_IMAGE: a full-page image is included */
  hasImage: boolean;
  /** BKPIMAGE_APPLY: replay restores the page from the image (0x04 on 13/14, 0x02 on 15+) */
  applyImage: boolean;
  /** BKPBLOCK_WILL_INIT: replay initialises the page without reading it */
  willInit: boolean;
  /** length of the block's rmgr data (not the image) */
  dataLength: number;
}

export type RelationEvent =
  | { kind: 'smgr-create'; spcOid: number; dbOid: number; relNumber: number; fork: number }
  /** the relation was truncated to `blocks` blocks; flags are SMGR_TRUNCATE_* (1 heap, 2 vm, 4 fsm) */
  | { kind: 'smgr-truncate'; spcOid: number; dbOid: number; relNumber: number; blocks: number; flags: number }
  | { kind: 'db-create'; dbOid: number; spcOid: number }
  | { kind: 'db-drop'; dbOid: number; spcOids: number[] }
  /** xact commit/abort (incl. prepared) that drops relation files */
  | { kind: 'rels-dropped'; rels: { spcOid: number; dbOid: number; relNumber: number }[] };

/**
 * LSNs of decoded records are numbers, not bigint: exact up to 2^53 (8 PiB of WAL, far
 * beyond any real cluster), and no BigInt allocated per record (that was ~10 % of
 * decoding). Compare them with bigint LSNs after Number(), or convert with BigInt().
 */
export interface WalRecord {
  /** start of the record */
  lsn: number;
  /** first byte after the record (not MAXALIGNed; page headers inside the record counted) */
  endLsn: number;
  /** xl_prev */
  prevLsn: number;
  xid: number;
  rmgr: number;
  rmgrName: string;
  /** xl_info: the full byte, rmgr bits (0xF0) and XLR_* bits (0x0F) */
  info: number;
  /** xl_tot_len */
  totalLength: number;
  blocks: BlockRef[];
  /** empty for most records */
  events: RelationEvent[];
}

export interface DecodeError {
  kind: 'error';
  /** where the damage was found (record start, or the page whose header is bad); a number, as WalRecord's */
  lsn: number;
  message: string;
}

export function isDecodeError(r: WalRecord | DecodeError | null): r is DecodeError {
  return r !== null && (r as DecodeError).kind === 'error';
}
