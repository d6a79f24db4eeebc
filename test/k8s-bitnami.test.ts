// deploy/k8s/bitnami/values.yaml against the bitnami/postgresql chart it names
// (values.yaml, values.schema.json and Chart.yaml of 17.1.0 in
// test/fixtures/bitnami-postgresql): every key is one the chart has (Helm
// drops the others silently), the types match the chart's, the schema the
// chart ships accepts it, the sidecar is a valid container that mounts the
// read replica's PGDATA read-only as the chart's uid, and its command line and
// env pass `run --check` with the chart's paths.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { Pod } from 'kubernetes-models/v1';
import { at, isObj, K8S_DIR, readYaml, REPO, resolveEnv, SIDECAR_NAME, type EnvVar, type Json, type Obj } from './k8s-helpers.ts';
import { validateSchema } from './k8s-schema.ts';

const FIXTURES = join(REPO, 'test', 'fixtures', 'bitnami-postgresql');
const VALUES = join(K8S_DIR, 'bitnami', 'values.yaml');
const chart = readYaml(join(FIXTURES, 'Chart.yaml')) as Obj;
const defaults = readYaml(join(FIXTURES, 'values.yaml')) as Obj;
const ours = readYaml(VALUES) as Obj;
// Keys of values.schema.json that only drive Bitnami's UI forms.
const ANNOTATIONS = new Set(['$schema', 'title', 'form', 'hidden', 'value', 'path', 'render', 'sliderMin', 'sliderMax', 'sliderUnit']);

/**
 * The chart's JSON Schema in the subset test/k8s-schema.ts validates: UI-only
 * keys dropped, and objects open to other keys (JSON Schema's default, unlike
 * a CRD's pruning).
 */
function asStructural(v: Json): Json {
  if (Array.isArray(v)) return v.map(asStructural);
  if (!isObj(v)) return v;
  const out: Obj = Object.fromEntries(Object.entries(v).filter(([k]) => !ANNOTATIONS.has(k)).map(([k, x]) => [k, k === 'properties' && isObj(x)
    ? Object.fromEntries(Object.entries(x).map(([p, s]) => [p, asStructural(s)])) : asStructural(x)]));
  if (out.type === 'object' || isObj(out.properties)) out['x-kubernetes-preserve-unknown-fields'] = true;
  return out;
}

/** Key paths of `v` that the chart's values.yaml does not have, or has with another type. */
function unknownKeys(v: Json, d: Json, path: string[] = []): string[] {
  if (!isObj(v)) return [];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    const p = [...path, k];
    if (!isObj(d) || !(k in d)) { out.push(`${p.join('.')} (not in the chart)`); continue; }
    const dv = d[k]!;
    const kind = (y: Json): string => (Array.isArray(y) ? 'array' : y === null ? 'null' : typeof y);
    // An empty map or list in the defaults (e.g. sidecars: []) takes anything of that kind.
    if (dv !== null && dv !== '' && kind(dv) !== kind(x)) out.push(`${p.join('.')} (${kind(x)}, the chart has ${kind(dv)})`);
    else if (isObj(dv) && Object.keys(dv).length > 0) out.push(...unknownKeys(x, dv, p));
  }
  return out;
}

const sidecar = ((at(ours, 'readReplicas', 'sidecars') ?? []) as Json[]).find((c) => at(c, 'name') === SIDECAR_NAME) as Obj | undefined;

describe('k8s bitnami/postgresql values', () => {
  it('name the chart version the fixtures are from, with a pinned --version', () => {
    assert.equal(chart.name, 'postgresql');
    const text = readFileSync(VALUES, 'utf8');
    assert.match(text, new RegExp(`--version ${String(chart.version).replace(/\./g, '\\.')}\\b`));
    assert.match(readFileSync(join(REPO, 'docs', 'kubernetes.md'), 'utf8'), new RegExp(`--version ${String(chart.version).replace(/\./g, '\\.')}\\b`));
  });

  it('use only keys the chart has, with the chart\'s types', () => {
    assert.deepEqual(unknownKeys(ours, defaults), []);
    assert.deepEqual(unknownKeys({ readReplicas: { sidecar: [] } }, defaults), ['readReplicas.sidecar (not in the chart)'], 'control: a typo is caught');
    assert.deepEqual(unknownKeys({ readReplicas: { replicaCount: '1' } }, defaults), ['readReplicas.replicaCount (string, the chart has number)'], 'control');
  });

  it('pass the chart\'s values.schema.json', () => {
    const schema = asStructural(JSON.parse(readFileSync(join(FIXTURES, 'values.schema.json'), 'utf8')) as Json) as Obj;
    // Helm validates the merged values.
    assert.deepEqual(validateSchema({ ...defaults, ...ours }, schema), []);
    assert.match(validateSchema({ ...defaults, architecture: 2 }, schema).join(), /architecture: must be string/, 'control');
  });

  it('run replicas with a sidecar that is a valid container', () => {
    assert.equal(at(ours, 'architecture'), 'replication', 'read replicas exist only with architecture: replication');
    assert.ok(sidecar, 'readReplicas.sidecars has pg-prefaulter');
    new Pod({ metadata: { name: 'check' }, spec: { containers: [sidecar as never] } }).validate();
  });

  it('mount the replica\'s PGDATA read-only and run as the chart\'s uid', () => {
    const mountPath = String(at(defaults, 'readReplicas', 'persistence', 'mountPath'));
    const pgdata = String(at(defaults, 'postgresqlDataDir'));
    assert.ok(pgdata.startsWith(`${mountPath}/`), `PGDATA ${pgdata} is on the data volume ${mountPath}`);
    const mounts = (at(sidecar ?? null, 'volumeMounts') ?? []) as Json[];
    const data = mounts.find((m) => at(m, 'name') === 'data');
    assert.equal(at(data ?? null, 'mountPath'), mountPath, 'the chart\'s data volume at persistence.mountPath');
    assert.equal(at(data ?? null, 'readOnly'), true, 'read-only');
    // The chart's read StatefulSet defines these volumes (templates/read/statefulset.yaml).
    for (const m of mounts) assert.ok(['data', 'empty-dir'].includes(String(at(m, 'name'))), `volume ${String(at(m, 'name'))} exists in the chart's pod`);
    const env = (at(sidecar ?? null, 'env') ?? []) as Json[];
    assert.equal(at(env.find((e) => at(e, 'name') === 'PG_PREFAULTER_PGDATA') ?? null, 'value'), pgdata);
    assert.equal(at(sidecar ?? null, 'securityContext', 'runAsUser'), at(defaults, 'readReplicas', 'containerSecurityContext', 'runAsUser'));
    assert.equal(at(sidecar ?? null, 'securityContext', 'runAsGroup'), at(defaults, 'readReplicas', 'containerSecurityContext', 'runAsGroup'));
    assert.equal(at(sidecar ?? null, 'securityContext', 'readOnlyRootFilesystem'), true);
  });

  it('its args and env pass run --check with the chart\'s paths', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgpf-bitnami-'));
    try {
      const env = resolveEnv(((at(sidecar ?? null, 'env') ?? []) as Json[]) as unknown as EnvVar[],
        (e) => (/PASSWORD/.test(e.name) ? `s3cr3t-${e.name}` : `from-${e.name}`));
      const args = (at(sidecar ?? null, 'args') ?? []) as string[];
      const r = spawnSync(process.execPath, [join(REPO, 'bin', 'pg-prefaulter.js'), ...args, '--check'], {
        cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...env }, timeout: 30_000,
      });
      const out = `${r.stdout}${r.stderr}`;
      assert.equal(r.status, 0, out);
      const eff = parseToml(r.stdout) as Record<string, unknown>;
      assert.equal(eff.pgdata, at(defaults, 'postgresqlDataDir'));
      assert.equal(eff.host, '127.0.0.1');
      assert.equal(eff.port, at(defaults, 'containerPorts', 'postgresql'));
      assert.equal(eff.metrics_listen, '0.0.0.0:9441');
      assert.equal(eff.source, 'stream');
      assert.ok(!/s3cr3t-/.test(out), 'no password is printed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
