// The agent against an upstream that misbehaves (test/helpers/fake-upstream.ts):
// a legal 1 GiB record, a keepalive flood that never reads our answers, a
// trickling message, a server that breaks every session after the handshake,
// garbage WAL, silence. The follower is a real standby; only the upstream is
// fake. In every case: peak RSS (VmHWM of the agent process) under 150 MB, the
// agent notices what it should, and SIGTERM ends it in under 0.5 s.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { selectedVersions, withCluster, sleep, type Cluster } from './harness/index.ts';
import { startAgent, metricValue, type AgentProcess } from './helpers/agent-process.ts';
import { agentArgs, lsn } from './helpers/fault-checks.ts';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from './helpers/fake-upstream.ts';

const version = selectedVersions().at(-1)!;
const RSS_LIMIT = 150 * 1024 * 1024;
const STOP_LIMIT_MS = 500;

function peakRss(agent: AgentProcess): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${agent.proc.pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

interface Run {
  agent: AgentProcess;
  up: FakeUpstream;
}

async function withMisbehaving(t: TestContext, c: Cluster, opts: FakeUpstreamOptions, extra: string[], fn: (r: Run) => Promise<void>): Promise<void> {
  // RELIABILITY_CASE=huge-record (a behaviour name) runs just that case while iterating
  if (process.env.RELIABILITY_CASE && process.env.RELIABILITY_CASE !== opts.behaviour) return t.skip();
  const up = await startFakeUpstream(opts);
  const agent = await startAgent(agentArgs(c.standby, ['--primary-conninfo', `host=127.0.0.1 port=${up.port} user=postgres sslmode=disable`, ...extra]), process.env.AGENT_NODE_OPTIONS ? { NODE_OPTIONS: process.env.AGENT_NODE_OPTIONS } : {});
  try {
    try {
      await fn({ agent, up });
    } catch (e) {
      (e as Error).message += `\n--- agent output ---\n${agent.output().slice(-3000)}`;
      throw e;
    }
    const rss = peakRss(agent);
    t.diagnostic(`${opts.behaviour}: peak RSS ${(rss / 1048576).toFixed(1)} MB`);
    assert.ok(rss < RSS_LIMIT, `${opts.behaviour}: peak RSS ${(rss / 1048576).toFixed(1)} MB (limit 150 MB)`);
    const { code, ms } = await agent.stop();
    t.diagnostic(`${opts.behaviour}: SIGTERM exit in ${ms} ms`);
    assert.equal(code, 0);
    assert.ok(ms < STOP_LIMIT_MS, `${opts.behaviour}: SIGTERM took ${ms} ms\n${agent.output().slice(-2000)}`);
    assert.doesNotMatch(agent.output(), /stop took longer/);
  } finally {
    agent.proc.kill('SIGKILL');
    await up.close();
  }
}

/** Resolves once fn() stays the same for ms (polled). */
async function settled<T>(fn: () => Promise<T> | T, ms: number, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = JSON.stringify(await fn());
  let since = Date.now();
  for (;;) {
    await sleep(200);
    const now = await fn();
    const text = JSON.stringify(now);
    if (text !== last) {
      last = text;
      since = Date.now();
    } else if (Date.now() - since >= ms) return now;
    if (Date.now() > deadline) throw new Error(`never settled; last ${text}`);
  }
}

test(`PG ${version}: the agent against a misbehaving upstream`, async (t) => {
  await withCluster(version, {}, async (c) => {
    await t.test('a legal 1020 MiB record: the stream stops at the window, memory stays bounded', async (t) => {
      await withMisbehaving(t, c, { behaviour: 'huge-record' }, [], async ({ agent }) => {
        const s = await agent.waitFor((s) => s.state === 'streaming' && s.streamLsn, 'streaming');
        const replay = lsn(s.replayLsn);
        const streamLsn = lsn((await settled(async () => (await agent.status()).streamLsn, 1500)) as string);
        const ahead = streamLsn - replay;
        t.diagnostic(`stream ran ${ahead} bytes ahead of replay (readahead_bytes 32 MiB)`);
        assert.ok(ahead > 16n * 1024n * 1024n, `the stream got into the record (${ahead} bytes ahead)`);
        assert.ok(ahead <= 33n * 1024n * 1024n + 128n * 1024n, `the stream ran ${ahead} bytes ahead of replay, past the 32 MiB window`);
        const t0 = Date.now();
        const res = await fetch(`${agent.url}/healthz`);
        assert.equal(res.status, 200);
        assert.ok(Date.now() - t0 < 500, `/healthz took ${Date.now() - t0} ms`);
      });
    });

    await t.test('a legal 1020 MiB record inside a window that holds it: streamed past, the records after it decoded', async (t) => {
      await withMisbehaving(t, c, { behaviour: 'huge-record' }, ['--readahead-bytes', '2GiB'], async ({ agent }) => {
        const s = await agent.waitFor((s) => s.walRecords >= 22, 'the 22 records decoded', 120_000);
        assert.equal(s.decodeErrors, 0);
        assert.equal(s.state, 'streaming');
      });
    });

    await t.test('a keepalive flood that never reads: replies coalesced, no backlog', async (t) => {
      await withMisbehaving(t, c, { behaviour: 'keepalive-flood', walSenderTimeout: '60s' }, [], async ({ agent, up }) => {
        await agent.waitFor((s) => s.upstreamConnected === true, 'connected');
        const until = Date.now() + 4000;
        while (Date.now() < until) await sleep(250);
        assert.ok(up.keepalivesSent > 10_000, `the flood happened (${up.keepalivesSent} keepalives)`);
        const replies = await up.drainStatusUpdates();
        t.diagnostic(`${up.keepalivesSent} keepalives asking for a reply, ${replies} status updates`);
        assert.ok(replies <= 40, `${replies} status updates for ${up.keepalivesSent} keepalives in ~4 s (at most ~4/s while the position stands still)`);
      });
    });

    await t.test('a trickling message: dead after the read timeout, reconnected', async (t) => {
      await withMisbehaving(t, c, { behaviour: 'trickle', walSenderTimeout: '2s' }, [], async ({ agent, up }) => {
        await agent.waitFor(() => up.streams >= 2, 'a second session after the trickle timed out', 20_000);
        await agent.logged(/no complete message from the server/);
      });
    });

    await t.test('silence: dead after the read timeout, and SIGTERM does not wait for it', async (t) => {
      await withMisbehaving(t, c, { behaviour: 'silence', walSenderTimeout: '2s' }, [], async ({ agent, up }) => {
        await agent.waitFor(() => up.streams >= 2, 'a second session after the silence timed out', 20_000);
        await agent.waitFor(() => up.active > 0 && up.streams >= 3, 'silent again');
      });
    });

    await t.test('sessions that break after the handshake: the backoff grows', async (t) => {
      await withMisbehaving(t, c, { behaviour: 'handshake-break' }, ['--reconnect-min', '200ms', '--reconnect-max', '30s'], async ({ agent, up }) => {
        await agent.waitFor(() => up.streams >= 1, 'first session');
        const first = up.connectedAt[0]!;
        await sleep(6000);
        const times = up.connectedAt.filter((x) => x - first <= 6000);
        const gaps = times.slice(1).map((x, i) => x - times[i]!);
        t.diagnostic(`${times.length} sessions in 6 s, gaps ${gaps.join(' ')} ms`);
        // with the backoff reset at every handshake this was one every ~200 ms (30)
        assert.ok(times.length <= 8, `${times.length} sessions in 6 s`);
        assert.ok(gaps.at(-1)! > 3 * gaps[0]!, `gaps grow: ${gaps.join(' ')}`);
      });
    });

    await t.test('garbage WAL: a state and a metric say nothing decodes; /readyz unchanged', async (t) => {
      await withMisbehaving(t, c, { behaviour: 'garbage' }, [], async ({ agent }) => {
        const s = await agent.waitFor((s) => s.state === 'wal_undecodable', 'state wal_undecodable');
        assert.equal(s.walRecords, 0);
        assert.ok(s.decodeErrors >= 1);
        assert.equal(metricValue(await agent.scrape(), 'pg_prefaulter_state', { state: 'wal_undecodable' }), 1);
        await agent.logged(/no WAL record decodes since .*check that the upstream is this cluster's primary/);
        assert.equal((await fetch(`${agent.url}/readyz`)).status, 200);
      });
    });
  });
});
