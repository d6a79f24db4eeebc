// On-disk WAL layout constants (xlog_internal.h, xlogrecord.h) and the per-version differences.

/** xlp_magic of each supported major version (XLOG_PAGE_MAGIC). */
export const PAGE_MAGIC_BY_VERSION: ReadonlyMap<number, number> = new Map([
  [0xd106, 13],
  [0xd10d, 14],
  [0xd110, 15],
  [0xd113, 16],
  [0xd116, 17],
  [0xd118, 18],
]);

export const XLP_FIRST_IS_CONTRECORD = 0x0001;
export const XLP_LONG_HEADER = 0x0002;
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;
/** Every xlp_info bit, XLP_BKP_REMOVABLE (0x0004) included. */
export const XLP_ALL_FLAGS = 0x000f;

export const SIZE_OF_SHORT_PHD = 24;
export const SIZE_OF_LONG_PHD = 40;
export const SIZE_OF_XLOG_RECORD = 24;
/** offsetof(XLogRecord, xl_crc): the CRC covers the header up to here, after the payload. */
export const XL_CRC_OFFSET = 20;
/** XLogRecordMaxSize: no valid record is larger (1020 MiB). */
export const XLOG_RECORD_MAX_SIZE = 1020 * 1024 * 1024;

export const XLR_BLOCK_ID_DATA_SHORT = 255;
export const XLR_BLOCK_ID_DATA_LONG = 254;
export const XLR_BLOCK_ID_ORIGIN = 253;
export const XLR_BLOCK_ID_TOPLEVEL_XID = 252;
export const XLR_MAX_BLOCK_ID = 32;

export const BKPBLOCK_FORK_MASK = 0x0f;
export const BKPBLOCK_HAS_IMAGE = 0x10;
export const BKPBLOCK_HAS_DATA = 0x20;
export const BKPBLOCK_WILL_INIT = 0x40;
export const BKPBLOCK_SAME_REL = 0x80;

export const BKPIMAGE_HAS_HOLE = 0x01;

/** bimg_info bits that moved in PG 15 (lz4/zstd were added and APPLY renumbered). */
interface ImageBits {
  apply: number;
  compressedMask: number;
}
const IMAGE_BITS_13: ImageBits = { apply: 0x04, compressedMask: 0x02 }; // IS_COMPRESSED 0x02, APPLY 0x04
const IMAGE_BITS_15: ImageBits = { apply: 0x02, compressedMask: 0x04 | 0x08 | 0x10 }; // APPLY 0x02, PGLZ/LZ4/ZSTD
export function imageBits(majorVersion: number): ImageBits {
  return majorVersion >= 15 ? IMAGE_BITS_15 : IMAGE_BITS_13;
}

/**
 * PostgreSQL's default data page size (BLCKSZ). Images are checked against the server's
 * block size (WalDecoderOptions.blockSize, from SHOW block_size) like DecodeXLogRecord does;
 * WAL itself does not record it.
 */
export const DEFAULT_BLCKSZ = 8192;

export const XLOG_SWITCH = 0x40;

export function maxAlign(n: number): number {
  return (n + 7) & ~7;
}
