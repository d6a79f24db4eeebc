// The systemd unit for Patroni on VMs (deploy/systemd): systemd accepts it
// without a warning, it has the hardening and restart policy docs/patroni.md
// promises, and the configuration its ExecStart names passes `run --check`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, REPO } from './helpers/agent-process.ts';

const DIR = join(REPO, 'deploy', 'systemd');
const UNIT_TEXT = readFileSync(join(DIR, 'pg-prefaulter.service'), 'utf8');
// Where the unit expects the command and the config; the test maps them onto the checkout.
const INSTALLED_BIN = '/usr/local/bin/pg-prefaulter';
const INSTALLED_CONFIG = '/etc/pg-prefaulter/pg-prefaulter.toml';

/** [Section] -> key -> values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = new Map();
      sections.set(sec[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current && eq > 0, `unit line outside a section or without "=": ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

const unit = parseUnit(UNIT_TEXT);
const service = unit.get('Service')!;
const one = (key: string) => service.get(key)?.at(-1);

test('systemd unit: runs as postgres after Patroni, restarts on failure, reloads with SIGHUP, hardened', () => {
  assert.match(unit.get('Unit')!.get('After')!.join(' '), /\bpatroni\.service\b/);
  assert.equal(one('User'), 'postgres');
  assert.equal(one('Restart'), 'on-failure');
  assert.equal(one('RestartPreventExitStatus'), '2', 'a bad config (exit 2) must not restart in a loop');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  for (const [key, value] of Object.entries({
    ProtectSystem: 'strict', NoNewPrivileges: 'true', PrivateTmp: 'true', ProtectHome: 'true', PrivateDevices: 'true',
    CapabilityBoundingSet: '', RestrictSUIDSGID: 'true', ProtectKernelTunables: 'true',
  })) assert.equal(one(key), value, `${key}=${value}`);
  assert.equal(one('MemoryDenyWriteExecute'), undefined, 'MemoryDenyWriteExecute breaks V8\'s JIT');
  assert.ok(unit.get('Install')!.get('WantedBy')!.includes('multi-user.target'));
});

test('systemd unit: the config its ExecStart names passes run --check, and its PGDATA is read-only', () => {
  const exec = one('ExecStart')!.split(/\s+/);
  assert.equal(exec[0], INSTALLED_BIN);
  assert.equal(exec[1], 'run');
  const cfgAt = exec.indexOf('--config');
  assert.equal(exec[cfgAt + 1], INSTALLED_CONFIG, 'ExecStart names the installed sample config');
  const args = exec.slice(1).map((a) => (a === INSTALLED_CONFIG ? join(DIR, 'pg-prefaulter.toml') : a));
  const r = spawnSync(process.execPath, [BIN, ...args, '--check'], { encoding: 'utf8', cwd: '/', env: { ...process.env, PGPASSWORD: '', PGHOST: '', PGPORT: '', PGUSER: '' } });
  assert.equal(r.status, 0, `run --check failed:\n${r.stdout}${r.stderr}`);
  const pgdata = /^pgdata = "([^"]+)"/m.exec(r.stdout)?.[1];
  assert.ok(pgdata, `run --check prints pgdata:\n${r.stdout}`);
  const readOnly = (service.get('ReadOnlyPaths') ?? []).join(' ').split(/\s+/);
  assert.ok(readOnly.some((p) => pgdata === p || pgdata.startsWith(p + '/')), `pgdata ${pgdata} is under ReadOnlyPaths (${readOnly.join(' ')})`);
  assert.equal(/^port = (\d+)/m.exec(r.stdout)?.[1], '5432');
});

test('systemd unit: systemd-analyze verify accepts it without a warning', (t) => {
  const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    process.stderr.write('\n*** SKIPPING systemd-analyze verify: systemd-analyze not found (Debian package systemd) ***\n\n');
    return t.skip('systemd-analyze not found: apt-get install -y systemd');
  }
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-unit-'));
  try {
    // verify checks that ExecStart's command exists: point it at the checkout's.
    const path = join(dir, 'pg-prefaulter.service');
    writeFileSync(path, UNIT_TEXT.replaceAll(INSTALLED_BIN, BIN));
    const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' } });
    const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('pg-prefaulter.service'));
    assert.deepEqual(ours, [], 'systemd-analyze verify complains about the unit');
    assert.equal(r.status, 0, `systemd-analyze verify exit ${r.status}:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
