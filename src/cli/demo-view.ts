// The demo's live view: one screen computed from two successive /status snapshots.
export interface DemoFrame {
  at: number;
  elapsed: number;
  status: Record<string, unknown>;
  writes: number;
}

const mib = (n: unknown) => `${(Number(n ?? 0) / 1048576).toFixed(1)} MiB`;

function rate(now: number, before: number | undefined, seconds: number): string {
  if (before === undefined || seconds <= 0) return '-';
  return `${Math.round((now - before) / seconds)}/s`;
}

export function renderDemoView(f: DemoFrame, last: DemoFrame | null): string {
  const s = f.status;
  const p = (s.prefault ?? {}) as Record<string, unknown>;
  const lp = (last?.status.prefault ?? {}) as Record<string, unknown>;
  const dt = last ? (f.at - last.at) / 1000 : 0;
  const skipped = (p.skipped ?? {}) as Record<string, number>;
  const fh = (p.fileHandle ?? {}) as Record<string, number>;
  const lookups = (fh.hits ?? 0) + (fh.misses ?? 0);
  return [
    `pg-prefaulter demo  ${f.elapsed.toFixed(0)} s   agent ${s.state}   role ${s.role}   source ${s.source ?? '-'}`,
    `replay lag       ${mib(s.lagBytes)}   ${Number(s.lagSeconds ?? 0).toFixed(1)} s   (replay ${s.replayLsn ?? '-'}, receive ${s.receiveLsn ?? '-'})`,
    `prefault ahead   ${mib(s.aheadBytes)}   ${s.aheadPages ?? 0} pages   (stream ${s.streamLsn ?? '-'})`,
    `prefault rate    ${rate(Number(p.completed ?? 0), last ? Number(lp.completed ?? 0) : undefined, dt)} pages   in flight ${p.inFlight ?? 0}   issued ${p.issued ?? 0}`,
    `write load       ${rate(f.writes, last?.writes, dt)} updates on the primary (${f.writes} total)`,
    `skipped          ${Object.entries(skipped).map(([k, v]) => `${k} ${v}`).join('  ') || '-'}`,
    `file handles     open ${fh.open ?? 0}   hit rate ${lookups ? ((100 * (fh.hits ?? 0)) / lookups).toFixed(1) : '-'}%`,
    `decoded          ${s.walRecords ?? 0} records   ${mib(s.walBytes)}   ${s.decodeErrors ?? 0} errors`,
  ].join('\n');
}
