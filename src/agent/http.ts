// The agent's HTTP face: Prometheus metrics copied from the agent's plain
// stats at scrape time (nothing on the hot path touches prom-client), plus
// /healthz, /readyz and /status.
import { AgentMetrics, SKIP_REASONS } from '../metrics/registry.ts';
import { startHttp } from '../metrics/http.ts';
import type { Agent } from './agent.ts';
import { agentValue, copyValueMetrics } from './status-value.ts';

export interface AgentHttp {
  address: string;
  metrics: AgentMetrics;
  close(): Promise<void>;
}

/** Starts the endpoint on listen ("host:port"); "" disables it (returns null). */
export async function startAgentHttp(agent: Agent, listen: string): Promise<AgentHttp | null> {
  const metrics = new AgentMetrics();
  agent.observeReadSeconds = (s) => metrics.preadDuration.observe(s);
  metrics.onCollect(() => copyStats(agent, metrics));
  if (!listen) return null;
  const server = await startHttp({
    listen,
    metrics,
    status: () => agent.statusJson(),
    health: () => agent.healthy(),
  });
  return { address: server.address, metrics, close: () => server.close() };
}

function copyStats(agent: Agent, m: AgentMetrics): void {
  const s = agent.snap;
  if (s.state !== 'stopped') m.setState(s.state);
  m.setRole(s.role);
  if (s.timeline !== null) m.timeline.set(s.timeline);
  m.replayLagBytes.set(s.lagBytes);
  m.replayLagSeconds.set(s.lagSeconds);
  if (s.replayLsn !== null) m.followerReplayLsn.set(Number(s.replayLsn));
  if (s.receiveLsn !== null) m.followerReceiveLsn.set(Number(s.receiveLsn));
  if (s.streamLsn !== null) m.streamLsn.set(Number(s.streamLsn));
  m.upstreamConnected.set(s.upstreamConnected ? 1 : 0);
  m.setWalSource(s.source);
  m.setIoMethod(agent.ioMethod.method);
  m.setCounter(m.decodeErrors, {}, s.decodeErrors);
  m.setCounter(m.reconnects, { target: 'follower' }, s.reconnects.follower);
  m.setCounter(m.reconnects, { target: 'upstream' }, s.reconnects.upstream);
  for (const [rmgr, c] of s.walByRmgr) {
    m.setCounter(m.walRecords, { rmgr }, c.records);
    m.setCounter(m.walBytes, { rmgr }, c.bytes);
  }
  const p = s.prefault;
  m.prefaultAheadBytes.set(p?.aheadBytes ?? 0);
  m.prefaultAheadPages.set(p?.aheadPages ?? 0);
  m.readsInFlight.set(p?.inFlight ?? 0);
  m.fileHandlesOpen.set(p?.fileHandle.open ?? 0);
  copyValueMetrics(agentValue(p, agent.catchUp, agent.memory), agent.memory?.window.maxPagesAhead ?? null, m);
  if (!p) return;
  m.setCounter(m.prefaultsIssued, {}, p.issued);
  m.setCounter(m.prefaultsCompleted, {}, p.completed);
  m.setCounter(m.readErrors, {}, p.readErrors);
  m.setCounter(m.fileHandleCacheHits, {}, p.fileHandle.hits);
  m.setCounter(m.fileHandleCacheMisses, {}, p.fileHandle.misses);
  for (const reason of SKIP_REASONS) m.setCounter(m.prefaultsSkipped, { reason }, p.skipped[reason] ?? 0);
}
