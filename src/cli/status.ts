// `pg-prefaulter status`: one screen of facts from a running agent's HTTP
// endpoint and, with connection flags, from the follower itself.
import { parseOptions } from '../args.ts';
import { Follower } from '../follower/index.ts';
import { formatLsn } from '../lsn.ts';

const HELP = `Usage: pg-prefaulter status [options]

Shows what a running agent is doing (GET <url>/status), and with -H/-p/-U the
follower's own view.

Options:
  --url URL          agent HTTP address (default http://127.0.0.1:9441,
                     or PG_PREFAULTER_STATUS_URL)
  --json             print JSON for scripts
  -H, --host DIR     follower socket directory or host (also query the follower)
  -p, --port PORT    follower port (default 5432)
  -U, --username U   follower user (default postgres)
  -d, --database DB  follower database (default postgres)
  --timeout MS       give up after MS milliseconds (default 5000)
  -h, --help         this help
`;

export default async function statusCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseOptions(argv, {
      url: { type: 'string' },
      json: { type: 'boolean' },
      host: { type: 'string', short: 'H' },
      port: { type: 'string', short: 'p' },
      username: { type: 'string', short: 'U' },
      database: { type: 'string', short: 'd' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    }));
  } catch (e) {
    process.stderr.write(`pg-prefaulter status: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const timeoutMs = Number(values.timeout ?? 5000);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    process.stderr.write(`pg-prefaulter status: --timeout must be a positive number of milliseconds, got "${values.timeout}"\n`);
    return 2;
  }
  const url = (values.url ?? process.env.PG_PREFAULTER_STATUS_URL ?? 'http://127.0.0.1:9441').replace(/\/+$/, '');
  const out: Record<string, unknown> = {};
  let failed = false;
  try {
    const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    out.agent = await res.json();
  } catch (e) {
    failed = true;
    out.agent = null;
    out.agentError = `cannot read ${url}/status: ${(e as Error).message}; is the agent running with metrics_listen on that address?`;
  }
  if (values.host) {
    try {
      out.follower = await followerView({
        host: values.host,
        port: Number(values.port ?? 5432),
        user: values.username ?? 'postgres',
        database: values.database ?? 'postgres',
        timeoutMs,
      });
    } catch (e) {
      failed = true;
      out.follower = null;
      out.followerError = `cannot query the follower at ${values.host}:${values.port ?? 5432}: ${(e as Error).message}`;
    }
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(render(out));
  }
  return failed ? 1 : 0;
}

async function followerView(o: { host: string; port: number; user: string; database: string; timeoutMs: number }) {
  const f = await Follower.connect({ ...o, connectTimeoutMs: o.timeoutMs, applicationName: 'pg_prefaulter_status' });
  try {
    const s = await f.status();
    const lsn = (v: bigint | null) => (v === null ? null : formatLsn(v));
    return {
      role: s.inRecovery ? 'standby' : 'primary',
      timeline: s.timeline,
      replayLsn: lsn(s.replayLsn),
      receiveLsn: lsn(s.receiveLsn),
      replayPaused: s.replayPaused,
      replayTimestamp: s.replayTimestamp?.toISOString() ?? null,
      upstream: s.upstream ? `${s.upstream.host}:${s.upstream.port}` : null,
    };
  } finally {
    await f.close();
  }
}

function memoryLine(m: Record<string, number | string | null> | null, mib: (n: unknown) => string): string {
  if (!m) return '-';
  const limit = m.limitBytes == null ? 'no limit' : `limit ${mib(m.limitBytes)}`;
  return `${m.source} ${limit}   used ${m.usageBytes == null ? '-' : mib(m.usageBytes)}   page cache ${m.pageCacheBytes == null ? '-' : mib(m.pageCacheBytes)}`;
}

function render(out: Record<string, unknown>): string {
  const lines: string[] = [];
  const a = out.agent as Record<string, unknown> | null;
  if (a) {
    const p = (a.prefault ?? {}) as Record<string, unknown>;
    const skipped = (p.skipped ?? {}) as Record<string, number>;
    const fh = (p.fileHandle ?? {}) as Record<string, number>;
    const mib = (n: unknown) => `${(Number(n ?? 0) / 1048576).toFixed(1)} MiB`;
    lines.push(
      `agent      ${a.state}   role ${a.role}   timeline ${a.timeline ?? '-'}`,
      `upstream   ${a.upstream ?? '-'} (${a.source ?? 'no source'}${a.upstreamConnected ? ', connected' : ''})`,
      `replay     ${a.replayLsn ?? '-'}${a.replayPaused ? ' (paused)' : ''}   receive ${a.receiveLsn ?? '-'}   stream ${a.streamLsn ?? '-'}`,
      `lag        ${mib(a.lagBytes)}   ${Number(a.lagSeconds ?? 0).toFixed(1)} s`,
      `ahead      ${mib(a.aheadBytes)}   ${a.aheadPages ?? 0} pages`,
      `catch-up   ${a.catchUpSeconds == null ? (a.replayRateBytesPerSecond === 0 ? 'replay not advancing' : '-') : `${Number(a.catchUpSeconds).toFixed(0)} s`}   replay rate ${a.replayRateBytesPerSecond == null ? '-' : `${mib(a.replayRateBytesPerSecond)}/s`}`,
      `value      ${a.pagesFetchedForReplay ?? 0} pages fetched for replay (~${Number(a.replayWaitSavedSeconds ?? 0).toFixed(1)} s of replay wait saved)   ${a.pagesAlreadyResident ?? 0} already resident`,
      `memory     ${memoryLine(a.memory as Record<string, number | string | null> | null, mib)}   window ${((a.settings ?? {}) as Record<string, unknown>).maxPagesAhead ?? '-'} pages`,
      `prefaults  ${p.ioMethod ?? '-'}   issued ${p.issued ?? 0}   completed ${p.completed ?? 0}   in flight ${p.inFlight ?? 0}`,
      `skipped    ${Object.entries(skipped).map(([k, v]) => `${k} ${v}`).join('   ') || '-'}`,
      `files      open ${fh.open ?? 0}   hits ${fh.hits ?? 0}   misses ${fh.misses ?? 0}`,
      `decoded    ${a.walRecords ?? 0} records, ${mib(a.walBytes)}, ${a.decodeErrors ?? 0} errors`,
    );
  } else {
    lines.push(`agent      unavailable: ${out.agentError}`);
  }
  if ('follower' in out || 'followerError' in out) {
    const f = out.follower as Record<string, unknown> | null;
    lines.push(
      f
        ? `follower   ${f.role}   timeline ${f.timeline ?? '-'}   replay ${f.replayLsn ?? '-'}   receive ${f.receiveLsn ?? '-'}   upstream ${f.upstream ?? '-'}`
        : `follower   unavailable: ${out.followerError}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
