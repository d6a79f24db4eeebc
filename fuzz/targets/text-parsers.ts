// Fuzz targets for the text the operator or the environment hands us: libpq
// conninfo strings and URIs, ~/.pgpass files, the TOML config file and argv.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConninfo, resolveConnOptions } from '../../src/replication/conninfo.ts';
import { lookupPgpass } from '../../src/pgpass.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { PropertyViolation, type FuzzTarget } from '../engine.ts';

/** Only the documented errors may escape: anything else (TypeError, RangeError, ...) is a bug. */
function expectOnly(e: unknown, ok: (e: Error) => boolean, what: string): void {
  if (e instanceof Error && ok(e) && !(e instanceof TypeError) && !(e instanceof RangeError)) return;
  throw new PropertyViolation(`${what} threw an undocumented error: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
}

export const conninfoTarget: FuzzTarget = {
  name: 'conninfo',
  covers: ['/src/replication/conninfo.ts'],
  maxLen: 512,
  dictionary: ['host=', 'port=', 'user=', 'password=', 'dbname=', 'sslmode=', 'verify-full', 'connect_timeout=', "'", '\\', 'postgresql://', 'postgres://', '@', ':', '/', '?', '&', '%', '%2F', '[::1]', ',', '='],
  seeds: () =>
    ["host=a port=5432 user=u password='p w' sslmode=require", 'postgresql://u:p@h:5433/db?sslmode=disable&application_name=x', "host=/tmp port=1 dbname='a\\'b'", 'postgres://[::1]:5/d'].map((s) => Buffer.from(s)),
  run(input) {
    const text = input.toString('utf8');
    let partial;
    try {
      partial = parseConninfo(text);
    } catch (e) {
      expectOnly(e, (x) => /^connection (string|URI)/.test(x.message), 'parseConninfo');
      return;
    }
    try {
      resolveConnOptions(partial, { HOME: '/nonexistent' });
    } catch (e) {
      expectOnly(e, (x) => /^(connection (string|URI)|environment variable)/.test(x.message), 'resolveConnOptions');
    }
  },
};

let scratch: string | null = null;
export const pgpassTarget: FuzzTarget = {
  name: 'pgpass',
  covers: ['/src/pgpass.ts'],
  maxLen: 1024,
  dictionary: ['*', ':', '\\', '\\:', '\n', '\r\n', '#', 'localhost', '5432', 'replication', 'postgres'],
  seeds: () => [Buffer.from('h:5432:replication:u:secret\n*:*:*:*:fallback\n# comment\nh\\:x:1:d:u:pa\\:ss\n')],
  run(input) {
    scratch ??= mkdtempSync(join(tmpdir(), 'fuzz-pgpass-'));
    const file = join(scratch, 'pgpass');
    writeFileSync(file, input, { mode: 0o600 });
    for (const target of [
      { host: 'h', port: 5432, database: 'replication', user: 'u' },
      { host: '/tmp', port: 5432, database: 'db', user: 'postgres' },
    ]) {
      const pw = lookupPgpass(target, file); // never throws
      if (pw !== undefined && typeof pw !== 'string') throw new PropertyViolation(`lookupPgpass returned ${typeof pw}`);
    }
  },
};

export const configTarget: FuzzTarget = {
  name: 'config',
  covers: ['/src/config/'],
  maxLen: 2048,
  dictionary: ['readahead_bytes', 'max_pages_ahead', 'io_method', 'port', 'host', '"', ' = ', '\n', '[x]', '32MiB', '10s', '1e9', '-1', 'true', '"""', "'", '--port', '--readahead-bytes', '\0', '--config', 'metrics_listen', '0.0.0.0:9187', 'log_level', 'source'],
  seeds: () => [
    Buffer.concat([Buffer.from([0]), Buffer.from('port = 5433\nreadahead_bytes = "64MiB"\nio_method = "pread"\nstatus_interval = "5s"\nmetrics_listen = "127.0.0.1:9187"\n')]),
    Buffer.concat([Buffer.from([1]), Buffer.from('--port\x005433\x00--readahead-bytes\x0016MiB\x00--io-method=willneed')]),
  ],
  // First byte: 0 = the bytes are a TOML config file, 1 = NUL-separated argv.
  run(input) {
    scratch ??= mkdtempSync(join(tmpdir(), 'fuzz-config-'));
    const body = input.subarray(1);
    let args: { argv: string[]; env: NodeJS.ProcessEnv; cwd: string };
    if ((input[0] ?? 0) % 2 === 0) {
      const file = join(scratch, 'c.toml');
      writeFileSync(file, body);
      args = { argv: ['--config', file], env: {}, cwd: scratch };
    } else {
      args = { argv: body.toString('utf8').split('\0'), env: {}, cwd: scratch };
    }
    try {
      loadConfig(args);
    } catch (e) {
      expectOnly(e, (x) => x instanceof ConfigError, 'loadConfig');
    }
  },
};
