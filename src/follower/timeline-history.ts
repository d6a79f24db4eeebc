// Timeline history files (pg_wal/0000000N.history, timeline.c): one line per
// ancestor, "parentTLI<TAB>switchpoint<TAB>reason". Which timeline holds the
// WAL at a given LSN, for a reader that starts on an older timeline than the
// one recovery targets.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseLsn } from '../lsn.ts';

/** A timeline and the LSN where it ends (null: the target timeline, still open). */
export interface TimelineSpan {
  timeline: number;
  end: bigint | null;
}

/** Parse the text of timeline `tli`'s history file: its ancestors in order, then tli itself. */
export function parseTimelineHistory(text: string, tli: number): TimelineSpan[] {
  const spans: TimelineSpan[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [t, lsn] = line.split(/\s+/);
    const timeline = Number(t);
    if (!Number.isInteger(timeline) || !lsn) throw new Error(`timeline ${tli} history: cannot parse line "${line}"`);
    spans.push({ timeline, end: parseLsn(lsn) });
  }
  spans.push({ timeline: tli, end: null });
  return spans;
}

/** History of `tli` from pg_wal; timeline 1, or a missing file, is just [tli]. */
export async function readTimelineHistory(pgWalDir: string, tli: number): Promise<TimelineSpan[]> {
  if (tli <= 1) return [{ timeline: tli, end: null }];
  const name = `${tli.toString(16).toUpperCase().padStart(8, '0')}.history`;
  try {
    return parseTimelineHistory(await readFile(join(pgWalDir, name), 'utf8'), tli);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [{ timeline: tli, end: null }];
    throw e;
  }
}

/** The newest timeline with a history file in pg_wal (1 when there is none). */
export async function newestTimeline(pgWalDir: string): Promise<number> {
  const names = await readdir(pgWalDir).catch(() => [] as string[]);
  let best = 1;
  for (const n of names) {
    const m = /^([0-9A-F]{8})\.history$/.exec(n);
    if (m) best = Math.max(best, parseInt(m[1]!, 16));
  }
  return best;
}

/** Timeline whose WAL holds `lsn` along a history (the first span that ends after it). */
export function timelineAt(history: TimelineSpan[], lsn: bigint): number {
  for (const s of history) if (s.end === null || lsn < s.end) return s.timeline;
  return history[history.length - 1]!.timeline;
}
