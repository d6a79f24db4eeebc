// loadConfig: precedence across sources, rejection of unknown keys and bad
// values (naming key and source), secrets handling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, defaultConfig, loadConfig, redactedConfig, effectiveConfigToml, configHelp, KEYS } from '../src/config/index.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function withFile(dir: string, toml: string, name = 'pg-prefaulter.toml'): string {
  const path = join(dir, name);
  writeFileSync(path, toml);
  return path;
}

function rejects(fn: () => unknown, key: string, source: RegExp, message?: RegExp): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.key, key);
  assert.match(caught.source, source);
  assert.ok(caught.message.startsWith(caught.source), `message names the source: ${caught.message}`);
  if (key) assert.ok(caught.message.toLowerCase().includes(key), `message names the key: ${caught.message}`);
  if (message) assert.match(caught.message, message);
  return caught;
}

test('no sources at all gives the documented defaults', (t) => {
  const dir = tempDir(t);
  const { config, configPath, check, help } = loadConfig({ argv: [], env: {}, cwd: dir });
  assert.equal(configPath, null);
  assert.equal(check, false);
  assert.equal(help, false);
  assert.deepEqual(config, {
    pgdata: '', host: '/var/run/postgresql', port: 5432, username: 'postgres', database: 'postgres', password: '',
    passwordFile: '', primaryConninfo: '', replicationUser: '', replicationPassword: '', replicationPasswordFile: '',
    sslmode: 'prefer', sslrootcert: '', applicationName: 'pg_prefaulter', replicationSlot: '', source: 'stream',
    readaheadBytes: 32 * 1024 * 1024, maxPagesAhead: 'auto', ioConcurrency: 64, ioMethod: 'auto', maxOpenFiles: 0, pollIntervalMs: 100,
    statusIntervalMs: 10_000, connectTimeoutMs: 10_000, reconnectMinMs: 500, reconnectMaxMs: 30_000,
    metricsListen: '0.0.0.0:9441', logLevel: 'info',
  });
  assert.deepEqual(config, defaultConfig());
});

test('precedence: flag > PG_PREFAULTER_* env > file > libpq env > default, per key', (t) => {
  const dir = tempDir(t);
  withFile(dir, `
port = 6000
host = "/file/socket"
username = "file_user"
io_concurrency = 8
readahead_bytes = "1MiB"
`);
  const env = {
    PGPORT: '5000', PGHOST: '/libpq/socket', PGUSER: 'libpq_user', PGDATABASE: 'libpq_db',
    PG_PREFAULTER_PORT: '7000', PG_PREFAULTER_HOST: '/env/socket',
  };
  const { config, configPath } = loadConfig({ argv: ['--port', '8000'], env, cwd: dir });
  assert.equal(configPath, join(dir, 'pg-prefaulter.toml'));
  assert.equal(config.port, 8000, 'flag beats env, file and PGPORT');
  assert.equal(config.host, '/env/socket', 'env beats file and PGHOST');
  assert.equal(config.username, 'file_user', 'file beats PGUSER');
  assert.equal(config.database, 'libpq_db', 'PGDATABASE beats the default');
  assert.equal(config.ioConcurrency, 8);
  assert.equal(config.readaheadBytes, 1024 * 1024);
  assert.equal(config.logLevel, 'info', 'default when set nowhere');
  const { sources } = loadConfig({ argv: ['--port', '8000'], env, cwd: dir });
  assert.equal(sources.port, 'flag --port');
  assert.equal(sources.host, 'env PG_PREFAULTER_HOST');
  assert.equal(sources.username, `${join(dir, 'pg-prefaulter.toml')}:username`);
  assert.equal(sources.database, 'env PGDATABASE');
  assert.equal(sources.log_level, 'default');
  const dump = effectiveConfigToml(config, sources);
  assert.match(dump, /^port = 8000  # flag --port$/m);
  assert.match(dump, /^database = "libpq_db"  # env PGDATABASE$/m);
  assert.match(dump, /^log_level = "info"$/m);

  // Drop the top layer each time: the next one shows through.
  assert.equal(loadConfig({ argv: [], env, cwd: dir }).config.port, 7000);
  const { PG_PREFAULTER_PORT: _p, ...envNoPrefixed } = env;
  assert.equal(loadConfig({ argv: [], env: envNoPrefixed, cwd: dir }).config.port, 6000);
  const empty = tempDir(t);
  assert.equal(loadConfig({ argv: [], env: envNoPrefixed, cwd: empty }).config.port, 5000);
  assert.equal(loadConfig({ argv: [], env: {}, cwd: empty }).config.port, 5432);
});

test('flag spellings: --key value, --key=value, short -p value, -p6000, last one wins', (t) => {
  const dir = tempDir(t);
  const c = loadConfig({
    argv: ['-D', '/data', '--host=/sock', '-p6001', '-U', 'u', '-d', 'db', '--readahead-bytes', '512kB',
      '--poll-interval', '1min', '--log-level', 'debug', '--io-concurrency', '3', '--io-concurrency=4', '-H', '/sock2'],
    env: {}, cwd: dir,
  }).config;
  assert.equal(c.pgdata, '/data');
  assert.equal(c.host, '/sock2');
  assert.equal(c.port, 6001);
  assert.equal(c.username, 'u');
  assert.equal(c.database, 'db');
  assert.equal(c.readaheadBytes, 512 * 1024);
  assert.equal(c.pollIntervalMs, 60_000);
  assert.equal(c.logLevel, 'debug');
  assert.equal(c.ioConcurrency, 4);
});

test('sizes and durations accept numbers and unit strings (kB = 1024, like PostgreSQL)', (t) => {
  const dir = tempDir(t);
  withFile(dir, `
readahead_bytes = 65536
poll_interval = 250
status_interval = "2s"
connect_timeout = "1.5s"
reconnect_min = "100ms"
reconnect_max = "1h"
`);
  const c = loadConfig({ argv: [], env: { PG_PREFAULTER_MAX_PAGES_AHEAD: '100' }, cwd: dir }).config;
  assert.equal(c.readaheadBytes, 65536);
  assert.equal(c.pollIntervalMs, 250);
  assert.equal(c.statusIntervalMs, 2000);
  assert.equal(c.connectTimeoutMs, 1500);
  assert.equal(c.reconnectMinMs, 100);
  assert.equal(c.reconnectMaxMs, 3_600_000);
  assert.equal(c.maxPagesAhead, 100);
  // max_pages_ahead also takes "auto" (flag, env and file), and names it when the value is bad.
  assert.equal(loadConfig({ argv: ['--max-pages-ahead', 'auto'], env: {}, cwd: dir }).config.maxPagesAhead, 'auto');
  assert.throws(() => loadConfig({ argv: ['--max-pages-ahead', 'lots'], env: {}, cwd: dir }), /max_pages_ahead.*expected an integer at least 1 or "auto"/);
  for (const [s, bytes] of [['1GB', 1024 ** 3], ['512kB', 524288], ['32MiB', 33554432], ['8192', 8192], ['2TB', 2 * 1024 ** 4]] as const) {
    assert.equal(loadConfig({ argv: ['--readahead-bytes', s], env: {}, cwd: dir }).config.readaheadBytes, bytes, s);
  }
});

test('--config names the file; PG_PREFAULTER_CONFIG too; a missing named file is an error', (t) => {
  const dir = tempDir(t);
  const path = withFile(dir, 'port = 6543\n', 'custom.toml');
  assert.equal(loadConfig({ argv: ['--config', 'custom.toml'], env: {}, cwd: dir }).config.port, 6543);
  const viaEnv = loadConfig({ argv: [], env: { PG_PREFAULTER_CONFIG: path }, cwd: '/' });
  assert.equal(viaEnv.configPath, path);
  assert.equal(viaEnv.config.port, 6543);
  rejects(() => loadConfig({ argv: ['--config', 'nope.toml'], env: {}, cwd: dir }), 'config', /flag --config/, /does not exist/);
});

test('unknown keys are rejected from the file, the environment and flags, naming key and source', (t) => {
  const dir = tempDir(t);
  const path = withFile(dir, 'port = 5432\nreadahead_byte = "1MB"\n');
  const e = rejects(() => loadConfig({ argv: [], env: {}, cwd: dir }), 'readahead_byte', new RegExp(`${path}:readahead_byte`), /unknown key/);
  assert.match(e.message, /did you mean readahead_bytes\?/);

  withFile(dir, '[connection]\nport = 1\n');
  rejects(() => loadConfig({ argv: [], env: {}, cwd: dir }), 'connection', /:connection$/, /flat/);

  const empty = tempDir(t);
  rejects(() => loadConfig({ argv: [], env: { PG_PREFAULTER_IO_CONCURRENCE: '4' }, cwd: empty }),
    'io_concurrence', /env PG_PREFAULTER_IO_CONCURRENCE/, /did you mean PG_PREFAULTER_IO_CONCURRENCY\?/);
  rejects(() => loadConfig({ argv: ['--readahead', '1MB'], env: {}, cwd: empty }), 'readahead', /flag --readahead/, /unknown option/);
  // The status command's variable shares the container env: not an error for run.
  assert.equal(loadConfig({ argv: [], env: { PG_PREFAULTER_STATUS_URL: 'http://127.0.0.1:9441' }, cwd: empty }).config.port, 5432);
  rejects(() => loadConfig({ argv: ['stray'], env: {}, cwd: empty }), 'stray', /argument "stray"/);
  rejects(() => loadConfig({ argv: ['--port'], env: {}, cwd: empty }), 'port', /flag --port/, /needs a value/);
});

test('bad values are rejected naming the key, the source and what is allowed', (t) => {
  const dir = tempDir(t);
  const path = withFile(dir, 'readahead_bytes = "32 potatoes"\n');
  rejects(() => loadConfig({ argv: [], env: {}, cwd: dir }), 'readahead_bytes', new RegExp(`${path}:readahead_bytes`), /kB, MB, GB/);
  withFile(dir, 'port = "5432"\n'); // ints in TOML are numbers; a quoted int is a string...
  // ...which we accept, as env/flags are strings too; a non-numeric string is not.
  assert.equal(loadConfig({ argv: [], env: {}, cwd: dir }).config.port, 5432);
  withFile(dir, 'port = "fivefourthreetwo"\n');
  rejects(() => loadConfig({ argv: [], env: {}, cwd: dir }), 'port', /:port$/, /integer/);
  withFile(dir, 'host = 5\n');
  rejects(() => loadConfig({ argv: [], env: {}, cwd: dir }), 'host', /:host$/, /expected a string/);
  withFile(dir, 'port = \n');
  rejects(() => loadConfig({ argv: [], env: {}, cwd: dir }), 'config', new RegExp(path), /not valid TOML/);

  const empty = tempDir(t);
  const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => () => loadConfig({ argv, env, cwd: empty });
  rejects(load([], { PG_PREFAULTER_POLL_INTERVAL: '10 fortnights' }), 'poll_interval', /env PG_PREFAULTER_POLL_INTERVAL/, /us, ms, s, min, h, d/);
  rejects(load(['--sslmode', 'maybe']), 'sslmode', /flag --sslmode/, /disable, allow, prefer, require, verify-ca, verify-full/);
  rejects(load(['--source', 'archive']), 'source', /flag --source/, /stream, local/);
  rejects(load(['--log-level', 'loud']), 'log_level', /flag --log-level/, /trace, debug, info, warn, error, fatal/);
  rejects(load(['--io-concurrency', '0']), 'io_concurrency', /flag --io-concurrency/, /from 1 to 1024/);
  rejects(load(['--io-concurrency', '2000']), 'io_concurrency', /flag --io-concurrency/, /from 1 to 1024/);
  rejects(load(['-p', '70000']), 'port', /flag -p \(--port\)/, /from 1 to 65535/);
  rejects(load([], { PGPORT: 'abc' }), 'port', /env PGPORT/, /integer/);
  assert.equal(loadConfig({ argv: ['-p', '6000'], env: { PGPORT: '5432,5433' }, cwd: empty }).config.port, 6000,
    'an overridden libpq variable (meant for other tools) is not validated');
  rejects(load(['--metrics-listen', 'localhost']), 'metrics_listen', /flag --metrics-listen/, /host:port/);
  rejects(load(['--reconnect-min', '1min', '--reconnect-max', '10s']), 'reconnect_min', /flag --reconnect-min/, /reconnect_max/);
  rejects(load(['--password-file', join(empty, 'absent')]), 'password_file', /flag --password-file/, /ENOENT/);
});

test('metrics_listen accepts host:port, [v6]:port, :port and "" (disabled)', (t) => {
  const dir = tempDir(t);
  for (const v of ['127.0.0.1:0', '[::1]:9441', ':9441', '', '0.0.0.0:9441']) {
    assert.equal(loadConfig({ argv: ['--metrics-listen', v], env: {}, cwd: dir }).config.metricsListen, v);
  }
});

test('passwords: password_file beats PGPASSWORD; password and password_file set explicitly together are rejected', (t) => {
  const dir = tempDir(t);
  const secret = withFile(dir, 's3cret\n', 'pw');
  const c = loadConfig({ argv: ['--password-file', secret], env: { PGPASSWORD: 'fromlibpq' }, cwd: dir }).config;
  assert.equal(c.password, '');
  assert.equal(c.passwordFile, secret);
  assert.equal(loadConfig({ argv: [], env: { PGPASSWORD: 'fromlibpq' }, cwd: dir }).config.password, 'fromlibpq');
  rejects(() => loadConfig({ argv: ['--password-file', secret], env: { PG_PREFAULTER_PASSWORD: 'x' }, cwd: dir }),
    'password', /env PG_PREFAULTER_PASSWORD/, /only one/);
  rejects(() => loadConfig({ argv: ['--replication-password-file', secret, '--replication-password', 'x'], env: {}, cwd: dir }),
    'replication_password', /flag --replication-password/, /only one/);
});

test('redaction: secrets never appear in redactedConfig or the --check dump', (t) => {
  const dir = tempDir(t);
  const { config } = loadConfig({
    argv: ['--password', 'hunter2', '--replication-password', 'swordfish',
      '--primary-conninfo', "host=up port=5432 user=rep password='open sesame' sslmode=require"],
    env: {}, cwd: dir,
  });
  const red = redactedConfig(config);
  assert.equal(red.password, '***');
  assert.equal(red.replicationPassword, '***');
  assert.equal(red.primaryConninfo, 'host=up port=5432 user=rep password=*** sslmode=require');
  assert.equal(red.username, 'postgres');
  const dump = effectiveConfigToml(config);
  for (const secret of ['hunter2', 'swordfish', 'open sesame', 'sesame']) assert.ok(!dump.includes(secret), secret);
  assert.match(dump, /^password = "\*\*\*"$/m);
  assert.match(dump, /^readahead_bytes = "32MiB"$/m);
  // The dump is itself a valid config file giving the same (non-secret) values.
  const path = withFile(dir, effectiveConfigToml({ ...config, password: '', replicationPassword: '', primaryConninfo: '' }), 'dump.toml');
  const again = loadConfig({ argv: ['--config', path], env: {}, cwd: dir }).config;
  assert.deepEqual(again, { ...config, password: '', replicationPassword: '', primaryConninfo: '' });
  assert.equal(redactedConfig({ ...config, primaryConninfo: 'postgresql://rep:pw1@up:5432/db' }).primaryConninfo, 'postgresql://rep:***@up:5432/db');
});

test('--help and --check are reported; the help text lists every key with flag, env and default', (t) => {
  const dir = tempDir(t);
  const r = loadConfig({ argv: ['--check', '--port', '1'], env: {}, cwd: dir });
  assert.equal(r.check, true);
  assert.equal(r.help, false);
  // --help wins even over otherwise bad arguments.
  assert.equal(loadConfig({ argv: ['--bogus', '-h'], env: { PG_PREFAULTER_BOGUS: '1' }, cwd: dir }).help, true);
  const help = configHelp();
  for (const k of KEYS) {
    assert.ok(help.includes(k.flag), k.flag);
    assert.ok(help.includes(k.env), k.env);
    if (k.short) assert.ok(help.includes(`${k.short}, ${k.flag}`), k.short);
  }
  assert.match(help, /--check/);
  assert.match(help, /--config FILE/);
});
