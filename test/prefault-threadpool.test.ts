// libuv threadpool sizing: reported honestly, and made effective by a relaunch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sizeThreadpool } from '../src/prefault/index.ts';

const threadpoolModule = resolve('src/prefault/threadpool.ts');

function runNode(script: string, env: NodeJS.ProcessEnv): string {
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-threadpool-'));
  try {
    const file = join(dir, 'main.mts');
    writeFileSync(file, script);
    return execFileSync(process.execPath, ['--import', 'tsx', file], { env, encoding: 'utf8', cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function envWithout(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  delete env.PG_PREFAULTER_THREADPOOL_RELAUNCHED;
  return env;
}

test('sizeThreadpool reports whether libuv already runs with the requested pool', () => {
  const script = `import { sizeThreadpool } from ${JSON.stringify(threadpoolModule)};\nprocess.stdout.write(JSON.stringify(sizeThreadpool(64)));\n`;
  assert.deepEqual(JSON.parse(runNode(script, envWithout())), { requested: 64, effective: 4, needsRestart: true });
  assert.deepEqual(JSON.parse(runNode(script, { ...envWithout(), UV_THREADPOOL_SIZE: '64' })), { requested: 64, effective: 64, needsRestart: false });
  const saved = process.env.UV_THREADPOOL_SIZE;
  try {
    const here = sizeThreadpool(2000);
    assert.equal(here.requested, 1024, 'clamped to the libuv maximum');
    assert.equal(process.env.UV_THREADPOOL_SIZE, here.needsRestart ? '1024' : saved);
  } finally {
    if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE;
    else process.env.UV_THREADPOOL_SIZE = saved;
  }
});

test('relaunchWithThreadpool reruns the command once with the pool sized, and passes its exit code', () => {
  const script = `import { sizeThreadpool, relaunchWithThreadpool } from ${JSON.stringify(threadpoolModule)};
import { readdirSync } from 'node:fs';
const sizing = sizeThreadpool(16);
const code = await relaunchWithThreadpool(sizing);
if (code !== null) { process.stdout.write('parent saw ' + code + '\\n'); process.exit(code); }
process.stdout.write('child runs with ' + sizing.effective + '\\n');
// libuv starts its pool at the first piece of work (newer Node.js versions do not start it eagerly).
await (await import('node:fs/promises')).stat('/');
process.stderr.write('threads ' + readdirSync('/proc/self/task').length + '\\n');
process.exitCode = 3;
`;
  let out = '';
  try {
    runNode(script, envWithout());
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    assert.equal(err.status, 3, 'the exit code of the relaunched process');
    out = err.stdout;
    // main thread + V8 workers + 16 libuv workers (a default pool gives about 11 in all)
    const threads = Number(/threads (\d+)/.exec(err.stderr)?.[1]);
    assert.ok(threads >= 20, `the relaunched process runs ${threads} threads`);
  }
  assert.equal(out, 'child runs with 16\nparent saw 3\n');
});
