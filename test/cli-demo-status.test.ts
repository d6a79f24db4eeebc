// First run as a newcomer sees it: `demo` headless for a bounded time reaches
// the streaming state, and `status --json` reads a running agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort, selectedVersions, withCluster } from './harness/index.ts';
import { BIN, startAgent } from './helpers/agent-process.ts';

const run = promisify(execFile);
const versions = selectedVersions();
const version = versions[versions.length - 1]!;

test(`demo (PG ${version}) runs headless for a bounded time and its agent streams`, async () => {
  const port = await freePort();
  const { stdout } = await run(
    process.execPath,
    [BIN, 'demo', '--pg', String(version), '--rows', '20000', '--duration', '8', '--headless', '--metrics-listen', `127.0.0.1:${port}`],
    { timeout: 180_000 },
  );
  assert.match(stdout, new RegExp(`http://127\\.0\\.0\\.1:${port}/metrics`));
  assert.match(stdout, /agent reached the streaming state/);
});

test('demo rejects bad arguments with exit 2 naming the flag', async () => {
  await assert.rejects(run(process.execPath, [BIN, 'demo', '--rows', 'lots']), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 2);
    assert.match(e.stderr, /--rows must be a positive whole number/);
    return true;
  });
});

test(`status --json (PG ${version}) returns the documented fields from a running agent`, async () => {
  await withCluster(version, { name: 'status' }, async (c) => {
    const agent = await startAgent(['-D', c.standby.dataDir, '-H', c.standby.socketDir, '-p', String(c.standby.port), '-U', 'postgres']);
    try {
      await agent.waitFor((s) => s.state === 'streaming', 'streaming');
      const { stdout } = await run(process.execPath, [
        BIN, 'status', '--json', '--url', agent.url, '-H', c.standby.socketDir, '-p', String(c.standby.port),
      ]);
      const out = JSON.parse(stdout);
      for (const key of ['state', 'role', 'timeline', 'upstream', 'source', 'replayLsn', 'receiveLsn', 'streamLsn', 'lagBytes', 'lagSeconds', 'aheadBytes', 'aheadPages', 'prefault', 'decodeErrors']) {
        assert.ok(key in out.agent, `status.agent lacks ${key}`);
      }
      assert.equal(out.agent.state, 'streaming');
      assert.equal(out.agent.role, 'standby');
      assert.equal(out.agent.upstream, `127.0.0.1:${c.primary.port}`);
      assert.match(out.agent.replayLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
      assert.equal(out.follower.role, 'standby');
      assert.equal(out.follower.upstream, `127.0.0.1:${c.primary.port}`);
      const text = await run(process.execPath, [BIN, 'status', '--url', agent.url]);
      assert.match(text.stdout, /^agent\s+streaming/m);
      assert.equal(out.agent.settings.ioMethod, 'willneed');
      assert.match(text.stdout, /^prefaults\s+willneed\s+issued \d+/m, 'the text view names the io method in use');
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});

test('status against no agent exits 1 with a clear message', async () => {
  const port = await freePort();
  await assert.rejects(run(process.execPath, [BIN, 'status', '--url', `http://127.0.0.1:${port}`, '--timeout', '2000']), (e: { code: number; stdout: string }) => {
    assert.equal(e.code, 1);
    assert.match(e.stdout, /agent\s+unavailable: cannot read http:\/\/127\.0\.0\.1:\d+\/status/);
    return true;
  });
});
