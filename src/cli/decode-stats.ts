// `decode --stats`: counts per resource manager, kept in arrays indexed by rmgr id (no
// object per record), mergeable across the parallel parts, printed like pg_waldump --stats.
import type { WalRecord } from '../wal/index.ts';

/** One rmgr's counts: [rmgr id, name, records, bytes, block references, full-page images]. */
export type StatsRow = [number, string, number, number, number, number];

export class RmgrCounts {
  private readonly names: string[] = [];
  private readonly records: number[] = [];
  private readonly bytes: number[] = [];
  private readonly blocks: number[] = [];
  private readonly images: number[] = [];

  add(r: WalRecord): void {
    const id = r.rmgr;
    if (this.names[id] === undefined) this.init(id, r.rmgrName);
    this.records[id]++;
    this.bytes[id] += r.totalLength;
    const blocks = r.blocks;
    this.blocks[id] += blocks.length;
    let images = 0;
    for (let i = 0; i < blocks.length; i++) if (blocks[i]!.hasImage) images++;
    this.images[id] += images;
  }

  rows(): StatsRow[] {
    const out: StatsRow[] = [];
    this.names.forEach((name, id) => out.push([id, name, this.records[id]!, this.bytes[id]!, this.blocks[id]!, this.images[id]!]));
    return out;
  }

  merge(rows: StatsRow[]): void {
    for (const [id, name, records, bytes, blocks, images] of rows) {
      if (this.names[id] === undefined) this.init(id, name);
      this.records[id] += records;
      this.bytes[id] += bytes;
      this.blocks[id] += blocks;
      this.images[id] += images;
    }
  }

  /** The summary table, rmgrs by bytes, then a total. */
  table(): string[] {
    const rows = this.rows().sort((a, b) => b[3] - a[3]);
    const total: StatsRow = [-1, 'Total', 0, 0, 0, 0];
    for (const r of rows) for (let k = 2; k < 6; k++) total[k] = (total[k] as number) + (r[k] as number);
    const pct = (n: number, d: number): string => `(${d ? ((100 * n) / d).toFixed(2) : '0.00'}%)`.padStart(9);
    const row = ([, name, records, bytes, blocks, images]: StatsRow): string =>
      `${name.padEnd(20)} ${String(records).padStart(10)} ${pct(records, total[2])} ${String(bytes).padStart(14)} ${pct(bytes, total[3])} ${String(blocks).padStart(11)} ${String(images).padStart(9)}`;
    return [
      `${'Type'.padEnd(20)} ${'N'.padStart(10)} ${'(%)'.padStart(9)} ${'Bytes'.padStart(14)} ${'(%)'.padStart(9)} ${'Block refs'.padStart(11)} ${'FPIs'.padStart(9)}`,
      `${'----'.padEnd(20)} ${'-'.padStart(10)} ${'---'.padStart(9)} ${'-----'.padStart(14)} ${'---'.padStart(9)} ${'----------'.padStart(11)} ${'----'.padStart(9)}`,
      ...rows.map(row),
      row(total),
    ];
  }

  private init(id: number, name: string): void {
    this.names[id] = name;
    this.records[id] = this.bytes[id] = this.blocks[id] = this.images[id] = 0;
  }
}
