// SIGHUP with a changed metrics_listen moves the HTTP endpoint (it is not
// silently ignored); a port that cannot be bound keeps the old one serving.
// Needs no PostgreSQL: the endpoint serves while the agent waits for one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './harness/index.ts';
import { BIN } from './helpers/agent-process.ts';

async function healthz(port: number): Promise<number | string> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) })).status;
  } catch (e) {
    return String((e as { cause?: { code?: string } }).cause?.code ?? e);
  }
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last ${String(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('SIGHUP rebinds metrics_listen; a taken port keeps the old endpoint and says so', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [first, second] = [await freePort(), await freePort()];
  const config = join(dir, 'pg-prefaulter.toml');
  const write = (port: number) => writeFileSync(config, `host = "${join(dir, 'no-server')}"\nport = 5999\nmetrics_listen = "127.0.0.1:${port}"\n`);
  write(first);
  const proc = spawn(process.execPath, [BIN, 'run', '--config', config], { env: { ...process.env, UV_THREADPOOL_SIZE: '64' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const blocker = createServer();
  t.after(() => {
    proc.kill('SIGKILL');
    blocker.close();
  });
  await until(`the endpoint on ${first}`, () => healthz(first), (s) => s === 200);

  write(second);
  proc.kill('SIGHUP');
  await until(`the endpoint on ${second}`, () => healthz(second), (s) => s === 200);
  await until(`port ${first} closed`, () => healthz(first), (s) => s === 'ECONNREFUSED');
  assert.match(out, /metrics_listen now 127\.0\.0\.1:\d+/);

  // A port someone else holds: the old endpoint keeps serving, and the log names the failure.
  const taken = await freePort();
  await new Promise<void>((r) => blocker.listen(taken, '127.0.0.1', () => r()));
  write(taken);
  proc.kill('SIGHUP');
  await until('the rebind failure logged', async () => out, (o) => /cannot listen; still serving on/.test(o));
  assert.equal(await healthz(second), 200);

  proc.kill('SIGTERM');
  assert.equal(await exited, 0, out.slice(-2000));
});
