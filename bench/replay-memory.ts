// The agent's memory during a container-mode run, sampled from outside: the
// anonymous memory of the processes in its cgroup (what the kernel cannot
// reclaim: the OOM killer's count), the cgroup's own peak (page cache
// included) and whether the cgroup OOM-killed anything.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MemorySample {
  /** Largest sum of RssAnon over the cgroup's processes seen, bytes. */
  peakAnonBytes: number;
  /** The cgroup's peak charge (v1 max_usage_in_bytes, v2 memory.peak), page cache included; null if unreadable. */
  peakUsageBytes: number | null;
  /** OOM kills in the cgroup during the run. */
  oomKills: number;
}

export interface MemorySampler {
  stop(): MemorySample;
}

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** oom_kill from v1 memory.oom_control or v2 memory.events. */
function oomKills(dir: string, version: 1 | 2): number {
  const text = read(join(dir, version === 1 ? 'memory.oom_control' : 'memory.events')) ?? '';
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

function anonBytes(dir: string): number {
  let sum = 0;
  for (const pid of (read(join(dir, 'cgroup.procs')) ?? '').split('\n')) {
    if (!pid) continue;
    const m = /^RssAnon:\s+(\d+) kB/m.exec(read(`/proc/${pid}/status`) ?? '');
    if (m) sum += Number(m[1]) * 1024;
  }
  return sum;
}

/** Starts sampling the cgroup every intervalMs (its peak counter reset first where the kernel allows). */
export function sampleCgroupMemory(dir: string, version: 1 | 2, intervalMs = 50): MemorySampler {
  const peakFile = join(dir, version === 1 ? 'memory.max_usage_in_bytes' : 'memory.peak');
  try {
    writeFileSync(peakFile, '0'); // v1 resets on any write; v2 (Linux 6.12+) per open file only, so it may stay cumulative
  } catch {
    // not resettable here
  }
  const oomBefore = oomKills(dir, version);
  let peakAnon = anonBytes(dir);
  const timer = setInterval(() => {
    peakAnon = Math.max(peakAnon, anonBytes(dir));
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      peakAnon = Math.max(peakAnon, anonBytes(dir));
      const peak = Number((read(peakFile) ?? '').trim());
      return { peakAnonBytes: peakAnon, peakUsageBytes: Number.isFinite(peak) && peak > 0 ? peak : null, oomKills: oomKills(dir, version) - oomBefore };
    },
  };
}

/**
 * PREFAULTER_BENCH_TRACE=1: every 100 ms while replay runs, replay's position
 * (from the standby) against the agent's (its /status), one TSV line each, to
 * see when and by how much the agent is ahead of or behind replay.
 */
export function traceAgentVsReplay(file: string, replayLsn: () => Promise<string>, statusUrl: string): () => Promise<void> {
  if (process.env.PREFAULTER_BENCH_TRACE !== '1') return async () => {};
  const t0 = performance.now();
  const lines = ['ms\treplay\tagent_stream\tagent_decoded\tagent_replay\tissued\trecords_behind\tahead_pages'];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const [replay, res] = await Promise.all([replayLsn(), fetch(statusUrl, { signal: AbortSignal.timeout(2000) })]);
        const s = (await res.json()) as { streamLsn: string | null; decodedLsn: string | null; replayLsn: string | null; aheadPages: number; prefault: { issued: number; recordsBehind: number } | null };
        lines.push([Math.round(performance.now() - t0), replay, s.streamLsn, s.decodedLsn, s.replayLsn, s.prefault?.issued, s.prefault?.recordsBehind, s.aheadPages].join('\t'));
      } catch (e) {
        lines.push(`${Math.round(performance.now() - t0)}\terror ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    running = false;
    await loop;
    writeFileSync(file, lines.join('\n') + '\n');
  };
}
