// The agent's snapshot as plain JSON, for /status and the status command.
import type { Config } from '../config/schema.ts';
import { formatLsn } from '../lsn.ts';
import type { AgentSnapshot } from './states.ts';
import type { AgentValue } from './status-value.ts';

/** value: what prefaulting is worth and what memory it has (status-value.ts); maxPagesAhead: the window as sized. */
export function statusView(s: AgentSnapshot, cfg: Config, ioMethod: string, value: AgentValue, maxPagesAhead: number | null): Record<string, unknown> {
  const lsn = (v: bigint | null) => (v === null ? null : formatLsn(v));
  const p = s.prefault;
  const rmgrs = [...s.walByRmgr.values()];
  return {
    state: s.state,
    role: s.role,
    timeline: s.timeline,
    upstream: s.upstream,
    source: s.source,
    upstreamConnected: s.upstreamConnected,
    replayLsn: lsn(s.replayLsn),
    receiveLsn: lsn(s.receiveLsn),
    streamLsn: lsn(s.streamLsn),
    decodedLsn: lsn(s.decodedLsn),
    replayPaused: s.replayPaused,
    replayTimestamp: s.replayTimestamp?.toISOString() ?? null,
    lagBytes: s.lagBytes,
    lagSeconds: s.lagSeconds,
    aheadBytes: p?.aheadBytes ?? 0,
    aheadPages: p?.aheadPages ?? 0,
    ...value,
    decodeErrors: s.decodeErrors,
    walRecords: rmgrs.reduce((a, c) => a + c.records, 0),
    walBytes: rmgrs.reduce((a, c) => a + c.bytes, 0),
    prefault: p ? { ...p } : null,
    recovery: s.recovery ? { ...s.recovery, redoLsn: formatLsn(s.recovery.redoLsn), replayLsn: formatLsn(s.recovery.replayLsn) } : null,
    firstHintMs: s.firstHintMs,
    reconnects: { ...s.reconnects },
    settings: {
      ioConcurrency: cfg.ioConcurrency,
      ioMethod,
      readaheadBytes: cfg.readaheadBytes,
      maxPagesAhead: maxPagesAhead ?? cfg.maxPagesAhead,
      maxPagesAheadSetting: cfg.maxPagesAhead,
      source: cfg.source,
      logLevel: cfg.logLevel,
    },
    uptimeSeconds: (Date.now() - s.startedAt) / 1000,
  };
}
