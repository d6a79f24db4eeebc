// Block -> file path and byte offset, the way PostgreSQL lays out relation
// files (relpath.c: GetRelationPath, md.c: segments of RELSEG_SIZE blocks).
// Paths are built once per (relation, fork, segment) and cached, so the hot
// path only does a few numeric Map lookups per block.
import { join } from 'node:path';

export const DEFAULTTABLESPACE_OID = 1663;
export const GLOBALTABLESPACE_OID = 1664;
const FORK_SUFFIX: readonly string[] = ['', '_fsm', '_vm', '_init'];

/** Default bound on cached segment paths before the cache is dropped and rebuilt. */
const DEFAULT_MAX_CACHED_PATHS = 200_000;

export interface RelationLayout {
  pgdata: string;
  blockSize: number;
  majorVersion: number;
  catalogVersion: number;
}

/** "PG_<major>_<catversion>": the per-version directory inside a tablespace. */
export function tablespaceVersionDirectory(majorVersion: number, catalogVersion: number): string {
  return `PG_${majorVersion}_${catalogVersion}`;
}

/** Blocks per 1 GiB segment file (RELSEG_SIZE in a default build). */
export function blocksPerSegment(blockSize: number): number {
  return Math.floor((1024 * 1024 * 1024) / blockSize);
}

/** The relation path relative to PGDATA, without segment suffix (relpath.c). */
export function relationPath(layout: RelationLayout, spcOid: number, dbOid: number, relNumber: number, fork: number): string {
  const suffix = FORK_SUFFIX[fork];
  if (suffix === undefined) throw new Error(`unknown fork number ${fork} (expected 0..3)`);
  if (spcOid === GLOBALTABLESPACE_OID) return `global/${relNumber}${suffix}`;
  if (spcOid === DEFAULTTABLESPACE_OID) return `base/${dbOid}/${relNumber}${suffix}`;
  return `pg_tblspc/${spcOid}/${tablespaceVersionDirectory(layout.majorVersion, layout.catalogVersion)}/${dbOid}/${relNumber}${suffix}`;
}

/** Segment file path relative to PGDATA: relationPath plus ".N" for N > 0. */
export function segmentPath(layout: RelationLayout, spcOid: number, dbOid: number, relNumber: number, fork: number, segno: number): string {
  const rel = relationPath(layout, spcOid, dbOid, relNumber, fork);
  return segno === 0 ? rel : `${rel}.${segno}`;
}

/**
 * Cached absolute segment paths. Keys are numbers only: tablespace, then
 * database, then relNumber*4+fork (exact: relNumber < 2^32), then segno.
 */
export class SegmentPaths {
  readonly blockSize: number;
  readonly blocksPerSegment: number;
  private readonly layout: RelationLayout;
  private readonly maxCached: number;
  private cached = 0;
  private readonly bySpc = new Map<number, Map<number, Map<number, string[]>>>();

  constructor(layout: RelationLayout, maxCached = DEFAULT_MAX_CACHED_PATHS) {
    if (!Number.isInteger(layout.blockSize) || layout.blockSize <= 0 || (layout.blockSize & (layout.blockSize - 1)) !== 0) {
      throw new Error(`block size ${layout.blockSize} is not a power of two`);
    }
    this.layout = layout;
    this.blockSize = layout.blockSize;
    this.blocksPerSegment = blocksPerSegment(layout.blockSize);
    this.maxCached = maxCached;
  }

  /** Segment number holding block. */
  segmentOf(block: number): number {
    return Math.floor(block / this.blocksPerSegment);
  }

  /** Byte offset of block inside its segment file. */
  offsetOf(block: number): number {
    return (block % this.blocksPerSegment) * this.blockSize;
  }

  /** Absolute path of the segment file holding block. */
  pathOf(spcOid: number, dbOid: number, relNumber: number, fork: number, block: number): string {
    const segno = this.segmentOf(block);
    let byDb = this.bySpc.get(spcOid);
    if (byDb === undefined) this.bySpc.set(spcOid, (byDb = new Map()));
    let byRel = byDb.get(dbOid);
    if (byRel === undefined) byDb.set(dbOid, (byRel = new Map()));
    const relKey = relNumber * 4 + fork;
    let segs = byRel.get(relKey);
    if (segs === undefined) byRel.set(relKey, (segs = []));
    let path = segs[segno];
    if (path === undefined) {
      if (this.cached >= this.maxCached) {
        // Bounded memory: start over (rebuilding a path is cheap, done once per segment).
        this.clear();
        return this.pathOf(spcOid, dbOid, relNumber, fork, block);
      }
      path = join(this.layout.pgdata, segmentPath(this.layout, spcOid, dbOid, relNumber, fork, segno));
      segs[segno] = path;
      this.cached++;
    }
    return path;
  }

  /** Forget every cached path of a database (it was dropped). */
  forgetDatabase(dbOid: number): void {
    for (const byDb of this.bySpc.values()) {
      const byRel = byDb.get(dbOid);
      if (byRel === undefined) continue;
      for (const segs of byRel.values()) this.cached -= countDefined(segs);
      byDb.delete(dbOid);
    }
  }

  clear(): void {
    this.bySpc.clear();
    this.cached = 0;
  }

  get size(): number {
    return this.cached;
  }
}

function countDefined(a: string[]): number {
  let n = 0;
  for (const v of a) if (v !== undefined) n++;
  return n;
}
