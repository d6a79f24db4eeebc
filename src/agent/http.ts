// The agent's HTTP face: Prometheus metrics copied from the agent's plain
// stats at scrape time (nothing on the hot path touches prom-client), plus
// /healthz, /readyz and /status; rebinds when metrics_listen changes on SIGHUP.
import { AgentMetrics, SKIP_REASONS } from '../metrics/registry.ts';
import { startHttp, type HttpEndpoint } from '../metrics/http.ts';
import type { Agent, AgentOptions } from './agent.ts';
import { agentValue, copyValueMetrics } from './status-value.ts';

/** The agent's instruments, and the hook the agent feeds pread latencies through (AgentOptions). */
export function agentMetrics(): { metrics: AgentMetrics; options: AgentOptions } {
  const metrics = new AgentMetrics();
  return { metrics, options: { observeReadSeconds: (s) => metrics.preadDuration.observe(s) } };
}

export class AgentHttp {
  private endpoint: HttpEndpoint | null = null;
  private listening = '';

  private constructor(
    private readonly agent: Agent,
    readonly metrics: AgentMetrics,
  ) {
    metrics.onCollect(() => copyStats(agent, metrics));
  }

  /** Starts the endpoint on listen ("host:port"; "" = none). Throws when it cannot listen. */
  static async start(agent: Agent, metrics: AgentMetrics, listen: string): Promise<AgentHttp> {
    const http = new AgentHttp(agent, metrics);
    await http.listen(listen);
    return http;
  }

  /** Bound address ("host:port"), or null when disabled. */
  get address(): string | null {
    return this.endpoint?.address ?? null;
  }

  /**
   * Moves the endpoint to listen ("" closes it). The new address is bound
   * before the old one closes, so a failure (port taken) keeps the old one
   * serving and throws.
   */
  async listen(listen: string): Promise<void> {
    if (listen === this.listening && (this.endpoint !== null || listen === '')) return;
    const next = listen
      ? await startHttp({ listen, metrics: this.metrics, status: () => this.agent.statusJson(), health: () => this.agent.healthy() })
      : null;
    const prev = this.endpoint;
    this.endpoint = next;
    this.listening = listen;
    await prev?.close();
  }

  async close(): Promise<void> {
    const prev = this.endpoint;
    this.endpoint = null;
    await prev?.close();
  }
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
  m.recoveryProgressVisible.set(s.state === 'recovering' && s.recovery?.progressVisible === false ? 0 : 1);
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
  // The recovery prefetch's prefaulter was closed (the node is a primary): its hints still count.
  if (!p && s.recovery) m.setCounter(m.prefaultsIssued, {}, s.recovery.prefaultsIssued);
  if (!p) return;
  m.setCounter(m.prefaultsIssued, {}, p.issued);
  m.setCounter(m.prefaultsCompleted, {}, p.completed);
  m.setCounter(m.readErrors, {}, p.readErrors);
  m.setCounter(m.fileHandleCacheHits, {}, p.fileHandle.hits);
  m.setCounter(m.fileHandleCacheMisses, {}, p.fileHandle.misses);
  for (const reason of SKIP_REASONS) m.setCounter(m.prefaultsSkipped, { reason }, p.skipped[reason] ?? 0);
}
