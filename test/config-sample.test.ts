// pg-prefaulter.sample.toml is generated from the schema and shows the real defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEYS, configReferenceMarkdown, defaultConfig, loadConfig, sampleToml } from '../src/config/index.ts';

const samplePath = new URL('../pg-prefaulter.sample.toml', import.meta.url);

test('pg-prefaulter.sample.toml equals sampleToml() (regenerate it from the schema when keys change)', () => {
  assert.equal(readFileSync(samplePath, 'utf8'), sampleToml(),
    'run: node --import tsx -e "import(\'./src/config/index.ts\').then(m => process.stdout.write(m.sampleToml()))" > pg-prefaulter.sample.toml');
});

test('the sample loads to the defaults, as is and with every key uncommented', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-sample-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sample = sampleToml();
  assert.deepEqual(loadConfig({ argv: ['--config', samplePath.pathname], env: {}, cwd: dir }).config, defaultConfig());

  const uncommented = sample.replace(/^#([a-z_]+ = )/gm, '$1');
  const lines = uncommented.split('\n').filter((l) => /^[a-z_]+ = /.test(l));
  assert.deepEqual(lines.map((l) => l.split(' = ')[0]), KEYS.map((k) => k.key), 'every key appears once, in schema order');
  const path = join(dir, 'uncommented.toml');
  writeFileSync(path, uncommented);
  // A libpq variable must not show through: the file sets every key.
  const loaded = loadConfig({ argv: ['--config', path], env: { PGPORT: '1111', PGUSER: 'someone' }, cwd: dir }).config;
  assert.deepEqual(loaded, defaultConfig());
});

test('the markdown reference has one row per key with its flag and env var', () => {
  const md = configReferenceMarkdown();
  for (const k of KEYS) {
    const row = md.split('\n').find((l) => l.startsWith(`| \`${k.key}\` |`));
    assert.ok(row, k.key);
    assert.ok(row.includes(k.flag) && row.includes(k.env), k.key);
  }
});
