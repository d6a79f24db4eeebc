// Reads PGDATA/global/pg_control (ControlFileData, src/include/catalog/
// pg_control.h) without SQL: where the last checkpoint's redo starts, the
// timeline, minRecoveryPoint and the cluster state, so WAL can be prefaulted
// while PostgreSQL is still in crash or archive recovery and refuses
// connections. Read-only; PostgreSQL writes the file in place (one write of
// 8 KiB whose first 512 bytes hold the data), so a read racing that write can
// see a mix: the CRC-32C catches it and we read again once.
//
// Layouts on x86_64/aarch64 (8-byte alignment of uint64/double/pg_time_t):
// - pg_control_version 1300 (PG 13-16): the base layout below.
// - 1700 (PG 17): CheckPoint gains `int wal_level` after fullPageWrites, in
//   what was padding (offset 20): every other offset stays.
// - 1800 (PG 18): `bool default_char_signedness` after data_checksum_version,
//   so the nonce moves 1 byte and the CRC from 288 to 292.
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '../wal/crc32c.ts';

/** DBState in pg_control.h (same order in 13-18). */
export const DB_STATES = [
  'starting up',
  'shut down',
  'shut down in recovery',
  'shutting down',
  'in crash recovery',
  'in archive recovery',
  'in production',
] as const;
export type DbState = (typeof DB_STATES)[number];

/** wal_level values (WalLevel in xlog.h). */
export const WAL_LEVELS = ['minimal', 'replica', 'logical'] as const;

export interface CheckPointCopy {
  redo: bigint;
  timeline: number;
  prevTimeline: number;
  fullPageWrites: boolean;
  /** PG 17+ only (null before). */
  walLevel: string | null;
  /** FullTransactionId: epoch << 32 | xid. */
  nextXid: bigint;
  nextOid: number;
  nextMulti: number;
  nextMultiOffset: number;
  oldestXid: number;
  oldestXidDb: number;
  oldestMulti: number;
  oldestMultiDb: number;
  time: Date;
  oldestCommitTsXid: number;
  newestCommitTsXid: number;
  oldestActiveXid: number;
}

export interface ControlFile {
  /**
   * Which file was read ("device:inode", from the open file itself), set by
   * readControlFile. PostgreSQL rewrites pg_control in place, so another
   * file at the same path means PGDATA was replaced (a new base backup).
   */
  fileId?: string;
  /** Major version from PG_VERSION (null if that file was not read). */
  majorVersion: number | null;
  pgControlVersion: number;
  catalogVersionNo: number;
  systemIdentifier: bigint;
  state: DbState;
  /** Last pg_control update. */
  time: Date;
  /** LSN of the latest checkpoint record. */
  checkPoint: bigint;
  checkPointCopy: CheckPointCopy;
  minRecoveryPoint: bigint;
  minRecoveryPointTli: number;
  backupStartPoint: bigint;
  backupEndPoint: bigint;
  backupEndRequired: boolean;
  walLevel: string;
  walLogHints: boolean;
  maxConnections: number;
  /** The other settings a standby must match (they size the lock tables and process slots in shared memory). */
  maxWorkerProcesses: number;
  maxWalSenders: number;
  maxPreparedXacts: number;
  maxLocksPerXact: number;
  blcksz: number;
  relsegSize: number;
  xlogBlcksz: number;
  xlogSegSize: number;
  dataChecksumVersion: number;
  /** PG 18+ only (null before). */
  defaultCharSignedness: boolean | null;
}

export type ControlFileProblem = 'unreadable' | 'short' | 'torn' | 'unknown-version' | 'implausible';

/** pg_control could not be used; `problem` says why, the message what to do. */
export class ControlFileError extends Error {
  constructor(
    readonly problem: ControlFileProblem,
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlFileError';
  }
}

const CONTROL_FILE_SIZE = 8192;
/** PG_CONTROL_VERSION per format: the offset of the CRC differs. */
const CRC_OFFSET: Record<number, number> = { 1300: 288, 1700: 288, 1800: 292 };
const MAJOR_OF_CONTROL_VERSION: Record<number, number[]> = { 1300: [13, 14, 15, 16], 1700: [17], 1800: [18] };
export const SUPPORTED_CONTROL_VERSIONS = Object.keys(CRC_OFFSET).map(Number);

/**
 * Parse the bytes of a pg_control file. `majorVersion` (from PG_VERSION), when
 * given, must agree with pg_control_version. Throws ControlFileError.
 */
export function parseControlFile(buf: Buffer, path = 'pg_control', majorVersion: number | null = null): ControlFile {
  if (buf.length < 296) {
    throw new ControlFileError('short', path, `${path} is ${buf.length} bytes, too short for a pg_control file (PostgreSQL writes ${CONTROL_FILE_SIZE}): it is truncated or not a pg_control file; check the volume, then restart the agent`);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const u32 = (o: number) => dv.getUint32(o, true);
  const i32 = (o: number) => dv.getInt32(o, true);
  const u64 = (o: number) => dv.getBigUint64(o, true);
  const time = (o: number) => new Date(Number(dv.getBigInt64(o, true)) * 1000);
  const pgControlVersion = u32(8);
  const crcOffset = CRC_OFFSET[pgControlVersion];
  if (crcOffset === undefined) {
    const hint = u32(8) > 0xffff ? ' (byte-swapped: written on a machine of the other endianness?)' : '';
    throw new ControlFileError('unknown-version', path, `${path} has pg_control_version ${pgControlVersion}${hint}; this agent reads ${SUPPORTED_CONTROL_VERSIONS.join(', ')} (PostgreSQL 13-18): upgrade pg-prefaulter to one that supports this PostgreSQL`);
  }
  const want = crc32c(buf, 0, crcOffset);
  const got = u32(crcOffset);
  if (want !== got) {
    throw new ControlFileError('torn', path, `${path} fails its CRC-32C check (stored ${hex(got)}, computed ${hex(want)}): read while PostgreSQL rewrote it, or corrupt; read it again, and if it persists run pg_controldata on it`);
  }
  if (majorVersion !== null && !MAJOR_OF_CONTROL_VERSION[pgControlVersion]!.includes(majorVersion)) {
    throw new ControlFileError('implausible', path, `${path} has pg_control_version ${pgControlVersion} but PG_VERSION says ${majorVersion}: PGDATA was replaced or is mid-upgrade; restart the agent once it is settled`);
  }
  const stateCode = u32(16);
  const state = DB_STATES[stateCode];
  if (state === undefined) {
    throw new ControlFileError('implausible', path, `${path} has state ${stateCode}, not a DBState of PostgreSQL 13-18`);
  }
  const v17 = pgControlVersion >= 1700;
  const cp = 40; // CheckPoint checkPointCopy
  const checkPointCopy: CheckPointCopy = {
    redo: u64(cp),
    timeline: u32(cp + 8),
    prevTimeline: u32(cp + 12),
    fullPageWrites: buf[cp + 16] !== 0,
    walLevel: v17 ? walLevel(i32(cp + 20)) : null,
    nextXid: u64(cp + 24),
    nextOid: u32(cp + 32),
    nextMulti: u32(cp + 36),
    nextMultiOffset: u32(cp + 40),
    oldestXid: u32(cp + 44),
    oldestXidDb: u32(cp + 48),
    oldestMulti: u32(cp + 52),
    oldestMultiDb: u32(cp + 56),
    time: time(cp + 64),
    oldestCommitTsXid: u32(cp + 72),
    newestCommitTsXid: u32(cp + 76),
    oldestActiveXid: u32(cp + 80),
  };
  // After the 88-byte CheckPoint at 40: unloggedLSN at 128.
  return {
    majorVersion,
    pgControlVersion,
    catalogVersionNo: u32(12),
    systemIdentifier: u64(0),
    state,
    time: time(24),
    checkPoint: u64(32),
    checkPointCopy,
    minRecoveryPoint: u64(136),
    minRecoveryPointTli: u32(144),
    backupStartPoint: u64(152),
    backupEndPoint: u64(160),
    backupEndRequired: buf[168] !== 0,
    walLevel: walLevel(i32(172)),
    walLogHints: buf[176] !== 0,
    maxConnections: i32(180),
    maxWorkerProcesses: i32(184),
    maxWalSenders: i32(188),
    maxPreparedXacts: i32(192),
    maxLocksPerXact: i32(196),
    blcksz: u32(216),
    relsegSize: u32(220),
    xlogBlcksz: u32(224),
    xlogSegSize: u32(228),
    dataChecksumVersion: u32(252),
    defaultCharSignedness: pgControlVersion >= 1800 ? buf[256] !== 0 : null,
  };
}

function walLevel(n: number): string {
  return WAL_LEVELS[n] ?? `unknown (${n})`;
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

/** Major version from PGDATA/PG_VERSION ("15\n"), or null when absent or unreadable. */
export async function readMajorVersion(dataDir: string): Promise<number | null> {
  try {
    const text = (await readFile(join(dataDir, 'PG_VERSION'), 'utf8')).trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/**
 * Read and check PGDATA/global/pg_control. A torn read (CRC mismatch: on ext4
 * a read racing PostgreSQL's rewrite of the file can see part of each; the end
 * of a crash recovery rewrites it several times within milliseconds) is
 * retried up to TORN_RETRIES times, `retryDelayMs` apart, doubling.
 * Throws ControlFileError: never anything else.
 */
export async function readControlFile(dataDir: string, opts: { retryDelayMs?: number } = {}): Promise<ControlFile> {
  const path = join(dataDir, 'global', 'pg_control');
  const major = await readMajorVersion(dataDir);
  for (let attempt = 0, delay = opts.retryDelayMs ?? 5; ; attempt++, delay *= 2) {
    try {
      const read = await readBytes(path);
      return { ...parseControlFile(read.bytes, path, major), fileId: read.fileId };
    } catch (e) {
      if (!(e instanceof ControlFileError) || e.problem !== 'torn' || attempt === TORN_RETRIES) throw e;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}
const TORN_RETRIES = 3;

// One pread of the whole file: PostgreSQL writes it with one write() too.
async function readBytes(path: string): Promise<{ bytes: Buffer; fileId: string }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw unreadable(path, e);
  }
  try {
    const buf = Buffer.alloc(CONTROL_FILE_SIZE);
    const { bytesRead } = await fh.read(buf, 0, CONTROL_FILE_SIZE, 0);
    // fstat of the descriptor read: the identity matches the bytes even if the file is swapped meanwhile.
    const st = await fh.stat({ bigint: true });
    return { bytes: buf.subarray(0, bytesRead), fileId: `${st.dev}:${st.ino}` };
  } catch (e) {
    throw unreadable(path, e);
  } finally {
    await fh.close().catch(() => {});
  }
}

function unreadable(path: string, e: unknown): ControlFileError {
  const code = (e as NodeJS.ErrnoException).code;
  const what =
    code === 'ENOENT'
      ? 'does not exist: is data_directory the PGDATA of this PostgreSQL, and is the volume mounted?'
      : code === 'EACCES'
        ? 'is not readable by this user: run the agent as the PGDATA owner or a user of its group (PGDATA group access: initdb -g)'
        : `cannot be read (${(e as Error).message})`;
  return new ControlFileError('unreadable', path, `${path} ${what}`);
}
