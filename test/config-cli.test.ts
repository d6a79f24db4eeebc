// `pg-prefaulter run --check` / `--help` through the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';

const bin = fileURLToPath(new URL('../bin/pg-prefaulter.js', import.meta.url));

/** Runs the CLI with only PATH/HOME from our environment (no PG* or PG_PREFAULTER_* leaking in). */
function cli(args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd, encoding: 'utf8', timeout: 60_000,
    env: { PATH: process.env.PATH ?? '', HOME: cwd, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('run --check prints the effective config with secrets redacted and exits 0; bad config exits 2', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'pg-prefaulter.toml'), 'io_concurrency = 8\nprimary_conninfo = "host=up user=rep password=conn-secret"\n');

  const ok = cli(['run', '--check', '--readahead-bytes', '1MiB'], dir,
    { PG_PREFAULTER_REPLICATION_PASSWORD: 'env-secret', PGPASSWORD: 'libpq-secret', PGPORT: '6432' });
  assert.equal(ok.code, 0, ok.stderr);
  for (const secret of ['conn-secret', 'env-secret', 'libpq-secret']) assert.ok(!ok.stdout.includes(secret), `${secret} printed`);
  const shown = parseToml(ok.stdout) as Record<string, unknown>;
  assert.equal(shown.io_concurrency, 8, 'from ./pg-prefaulter.toml');
  assert.equal(shown.readahead_bytes, '1MiB', 'from the flag');
  assert.equal(shown.port, 6432, 'from PGPORT');
  assert.equal(shown.password, '***');
  assert.equal(shown.replication_password, '***');
  assert.equal(shown.primary_conninfo, 'host=up user=rep password=***');

  const bad = cli(['run', '--check', '--io-concurrency', '0'], dir);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /flag --io-concurrency/);
  assert.match(bad.stderr, /io_concurrency/);
  assert.match(bad.stderr, /from 1 to 1024/);

  const unknownEnv = cli(['run', '--check'], dir, { PG_PREFAULTER_READAHEAD: '1MB' });
  assert.equal(unknownEnv.code, 2);
  assert.match(unknownEnv.stderr, /env PG_PREFAULTER_READAHEAD/);

  writeFileSync(join(dir, 'pg-prefaulter.toml'), 'prefetch = true\n');
  const unknownKey = cli(['run', '--check'], dir);
  assert.equal(unknownKey.code, 2);
  assert.match(unknownKey.stderr, /pg-prefaulter\.toml:prefetch/);
});

test('run --help lists the options and exits 0', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = cli(['run', '--help'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /--readahead-bytes SIZE/);
  assert.match(r.stdout, /PG_PREFAULTER_METRICS_LISTEN/);
  assert.match(r.stdout, /-D, --pgdata PATH/);
});

test('run --check reports what io_method runs as; an unknown method is refused by name', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const auto = cli(['run', '--check'], dir);
  assert.equal(auto.code, 0, auto.stderr);
  // On Linux with koffi installed (this project's supported platform) auto means hints.
  assert.match(auto.stdout, /io_method runs as willneed\b/);
  assert.match(auto.stdout, /^io_method = "auto"/m);
  const pread = cli(['run', '--check', '--io-method=pread'], dir);
  assert.equal(pread.code, 0, pread.stderr);
  assert.match(pread.stdout, /io_method runs as pread\b/);
  const bad = cli(['run', '--check'], dir, { PG_PREFAULTER_IO_METHOD: 'mmap' });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /io_method/);
  assert.match(bad.stderr, /auto, willneed, pread|"auto"/);
});

test('without the FFI (koffi not loadable) auto falls back to pread and an explicit willneed is refused, naming what to set', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A platform without koffi's prebuilt binary, simulated: resolving 'koffi' fails.
  const preload = join(dir, 'no-koffi.cjs');
  writeFileSync(preload, `const M = require('module'); const orig = M._resolveFilename;
M._resolveFilename = function (request, ...rest) {
  if (request === 'koffi') throw Object.assign(new Error("Cannot find module 'koffi'"), { code: 'MODULE_NOT_FOUND' });
  return orig.call(this, request, ...rest);
};\n`);
  const env = { NODE_OPTIONS: `--require ${preload}` };
  const auto = cli(['run', '--check'], dir, env);
  assert.equal(auto.code, 0, auto.stderr);
  assert.match(auto.stdout, /io_method runs as pread \(cannot load posix_fadvise through koffi \(Cannot find module 'koffi'\)\)/);
  const explicit = cli(['run', '--check', '--io-method', 'willneed'], dir, env);
  assert.equal(explicit.code, 2, explicit.stdout);
  assert.match(explicit.stderr, /io_method = "willneed" is not available: cannot load posix_fadvise through koffi/);
  assert.match(explicit.stderr, /set io_method = "pread" or "auto"/);
});
