// Every manifest under deploy/k8s parses, validates against the Kubernetes
// (or prometheus-operator) schema for its kind, renders with kustomize, and
// wires the pg-prefaulter sidecar the way docs/kubernetes.md says.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parse as parseToml } from 'smol-toml';
import { ConfigMap, Endpoints, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { PodMonitor, PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { KEYS } from '../src/config/index.ts';
import {
  at, isObj, K8S_DIR, loadManifests, loadYamlDocs, readYaml, REPO, SIDECAR_NAME, sidecars, type Json, type Obj,
} from './k8s-helpers.ts';

type Validatable = new (data: never) => { validate(): void };

// apiVersion/kind -> schema-validating model (kubernetes-models validates on .validate()).
const MODELS: Record<string, Validatable> = {
  'v1/ConfigMap': ConfigMap, 'v1/Secret': Secret, 'v1/Service': Service, 'v1/Endpoints': Endpoints,
  'v1/ServiceAccount': ServiceAccount, 'v1/Pod': Pod,
  'apps/v1/StatefulSet': StatefulSet,
  'rbac.authorization.k8s.io/v1/Role': Role, 'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor, 'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

// Fields postgres-operator keeps for a cluster sidecar (acidv1.Sidecar); its CRD
// prunes any other field silently, so e.g. `args` or `securityContext` would vanish.
const CR_SIDECAR_FIELDS = new Set(['name', 'image', 'env', 'ports', 'command', 'resources']);
const PG_MAJORS = ['14', '15', '16', '17', '18']; // the operator CRD's spec.postgresql.version enum
const PAGE = 8192;
const PROCESS_OVERHEAD = 150 * 1024 * 1024;
const PREFAULTER_PORT = 9441;
const SPILO_UID = 101;
const SPILO_GID = 103;
const SPILO_PGDATA = '/home/postgres/pgdata/pgroot/data';

function validateModel(value: Json, where: string): void {
  const key = `${String(at(value, 'apiVersion'))}/${String(at(value, 'kind'))}`;
  const Model = MODELS[key];
  assert.ok(Model, `${where}: no schema for ${key}; add a model to MODELS or a structural check`);
  try {
    new Model(value as never).validate();
  } catch (err) {
    assert.fail(`${where}: ${key} fails schema validation: ${(err as Error).message}`);
  }
}

/** A container spec on its own, validated as part of a minimal Pod. */
function validateContainer(c: Json, where: string): void {
  validateModel({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'check' }, spec: { containers: [c] } }, where);
}

function quantityBytes(q: string): number {
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  assert.ok(m, `not a memory quantity: ${q}`);
  const mult: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? mult[m[2]]! : 1);
}

function checkPostgresqlCr(v: Obj, where: string): void {
  const spec = at(v, 'spec');
  assert.ok(isObj(spec), `${where}: spec`);
  const team = at(spec, 'teamId');
  assert.equal(typeof team, 'string', `${where}: spec.teamId is a required string`);
  assert.ok(String(at(v, 'metadata', 'name')).startsWith(`${String(team)}-`), `${where}: name must start with teamId-`);
  const n = at(spec, 'numberOfInstances');
  assert.ok(Number.isInteger(n) && (n as number) >= 0, `${where}: spec.numberOfInstances is a required integer >= 0`);
  assert.equal(typeof at(spec, 'volume', 'size'), 'string', `${where}: spec.volume.size is a required string`);
  assert.ok(PG_MAJORS.includes(at(spec, 'postgresql', 'version') as string), `${where}: spec.postgresql.version in ${PG_MAJORS.join(',')} (a string)`);
  for (const [k, val] of Object.entries((at(spec, 'postgresql', 'parameters') ?? {}) as Obj)) {
    assert.equal(typeof val, 'string', `${where}: spec.postgresql.parameters.${k} must be a string (the CRD says so)`);
  }
  for (const av of (at(spec, 'additionalVolumes') ?? []) as Json[]) {
    for (const f of ['name', 'mountPath', 'volumeSource']) assert.ok(at(av, f) !== undefined, `${where}: additionalVolumes[].${f} is required`);
    const targets = (at(av, 'targetContainers') ?? []) as Json[];
    assert.ok(!(targets.includes('all') && targets.length > 1), `${where}: targetContainers is either [all] or names`);
    // The volume source must be a valid Kubernetes volume.
    validateModel({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'check' },
      spec: { containers: [{ name: 'c', image: 'i' }], volumes: [{ name: at(av, 'name') ?? null, ...(at(av, 'volumeSource') as Obj) }] },
    }, `${where}: additionalVolumes ${String(at(av, 'name'))}`);
  }
  for (const sc of (at(spec, 'sidecars') ?? []) as Json[]) {
    const extra = Object.keys(sc as Obj).filter((k) => !CR_SIDECAR_FIELDS.has(k));
    assert.deepEqual(extra, [], `${where}: sidecar fields the operator drops: ${extra.join(', ')}`);
    assert.equal(typeof at(sc, 'name'), 'string', `${where}: sidecar name`);
    assert.equal(typeof at(sc, 'image'), 'string', `${where}: sidecar image`);
    validateContainer(sc, `${where}: sidecar ${String(at(sc, 'name'))}`);
  }
  const res = at(spec, 'resources');
  if (res !== undefined) validateContainer({ name: 'c', image: 'i', resources: res }, `${where}: spec.resources`);
}

/** max_pages_ahead as the sidecar will see it: env, else its config file, else the default. */
function maxPagesAhead(s: ReturnType<typeof sidecars>[number]): number {
  const env = s.env.find((e) => e.name === 'PG_PREFAULTER_MAX_PAGES_AHEAD');
  if (env?.value !== undefined) return env.value === 'auto' ? 0 : Number(env.value);
  for (const text of s.files.values()) {
    const v = parseToml(text).max_pages_ahead;
    if (typeof v === 'number') return v;
  }
  const dflt = KEYS.find((k) => k.key === 'max_pages_ahead')!.default;
  // "auto" sizes the window to the limit itself: only the process has to fit.
  return dflt === 'auto' ? 0 : Number(dflt);
}

function portNumber(c: Json, port: Json | undefined): number | undefined {
  if (typeof port === 'number') return port;
  const p = ((at(c, 'ports') ?? []) as Json[]).find((x) => at(x, 'name') === port);
  return at(p, 'containerPort') as number | undefined;
}

function hasKubectl(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
}

function kustomize(dir: string): Json[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(out).map((d) => d.toJS() as Json).filter((v) => v !== null);
}

const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };

describe('k8s manifests: parse and validate', () => {
  it('every YAML file under deploy/k8s parses', () => {
    const docs = loadYamlDocs();
    assert.ok(docs.length >= 15, `expected the manifests, found ${docs.length} documents`);
  });

  it('every manifest validates against the schema for its kind', () => {
    const manifests = loadManifests();
    const kinds = new Set(manifests.map((d) => String(at(d.value, 'kind'))));
    for (const k of ['StatefulSet', 'Secret', 'Service', 'Role', 'RoleBinding', 'ServiceAccount', 'postgresql', 'PodMonitor', 'PrometheusRule']) {
      assert.ok(kinds.has(k), `a ${k} manifest exists`);
    }
    for (const d of manifests) {
      const where = `${d.file}#${d.index}`;
      if (at(d.value, 'apiVersion') === 'acid.zalan.do/v1' && at(d.value, 'kind') === 'postgresql') checkPostgresqlCr(d.value as Obj, where);
      else validateModel(d.value, where);
    }
  });

  it('the schema validation rejects a broken manifest (control)', () => {
    const ss = loadManifests().find((d) => at(d.value, 'kind') === 'StatefulSet')!.value as Obj;
    const broken = structuredClone(ss);
    ((at(broken, 'spec', 'template', 'spec', 'containers', 1, 'ports') as Json[])[0] as Obj).containerPort = 'ninety';
    assert.throws(() => validateModel(broken, 'control'), /containerPort/);
    const cr = structuredClone(loadManifests().find((d) => at(d.value, 'kind') === 'postgresql' && at(d.value, 'spec', 'sidecars') !== undefined)!.value as Obj);
    ((at(cr, 'spec', 'sidecars') as Json[])[0] as Obj).args = ['run'];
    assert.throws(() => checkPostgresqlCr(cr, 'control'), /args/);
  });

  it('the Helm values enable sidecars for every cluster with a valid container', () => {
    const values = readYaml(join(K8S_DIR, 'postgres-operator', 'operator-values-v1.yaml'));
    assert.equal(at(values, 'configTarget'), 'OperatorConfigurationCRD', 'sidecars only pass through the CRD config target');
    assert.equal(at(values, 'configKubernetes', 'enable_sidecars'), true);
    assert.equal(at(values, 'configKubernetes', 'share_pgsocket_with_sidecars'), true, 'the global sidecar needs the shared socket directory');
    const list = (at(values, 'configGeneral', 'sidecars') ?? []) as Json[];
    assert.ok(Array.isArray(list) && list.length === 1, 'configGeneral.sidecars is a list with the sidecar');
    validateContainer(list[0]!, 'operator-values-v1.yaml configGeneral.sidecars[0]');
  });

  it('image tags and the Dockerfile version label match package.json', () => {
    const images = sidecars().map((s) => String(at(s.container, 'image')));
    assert.ok(images.length >= 4, 'sidecar found in the StatefulSet, the postgresql CR, its patch and the Helm values');
    for (const img of images) assert.equal(img, `pg-prefaulter:${PKG.version}`);
    const docker = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    assert.match(docker, new RegExp(`org\\.opencontainers\\.image\\.version="${PKG.version.replace(/\./g, '\\.')}"`));
  });
});

describe('k8s manifests: the sidecar', () => {
  const all = sidecars();

  it('is found in the StatefulSet, the postgresql CR and the Helm values', () => {
    assert.deepEqual(all.map((s) => s.where.replace(/^.*\(/, '(')).sort(), [
      '(Helm configGeneral.sidecars)', '(StatefulSet)', '(postgresql acid-demo spec.sidecars)', '(postgresql patch spec.sidecars)',
    ]);
  });

  it('sizes its memory limit for the pages it reads ahead plus the process', () => {
    for (const s of all) {
      const limit = at(s.container, 'resources', 'limits', 'memory');
      assert.equal(typeof limit, 'string', `${s.where}: memory limit set`);
      const need = maxPagesAhead(s) * PAGE + PROCESS_OVERHEAD;
      assert.ok(quantityBytes(limit as string) >= need, `${s.where}: memory limit ${String(limit)} < ${need} bytes (max_pages_ahead x 8 KiB + 150 MiB)`);
      const request = at(s.container, 'resources', 'requests', 'memory');
      assert.equal(request, limit, `${s.where}: memory request = limit so the page cache it pays for is guaranteed`);
    }
  });

  it('exposes the metrics port and, where the spec allows, probes /healthz and /readyz', () => {
    for (const s of all) {
      assert.equal(portNumber(s.container, 'prefaulter'), PREFAULTER_PORT, `${s.where}: named port prefaulter = ${PREFAULTER_PORT}`);
      if (s.where.includes('spec.sidecars')) continue; // cluster sidecars cannot carry probes
      assert.equal(at(s.container, 'livenessProbe', 'httpGet', 'path'), '/healthz', `${s.where}: liveness`);
      assert.equal(at(s.container, 'readinessProbe', 'httpGet', 'path'), '/readyz', `${s.where}: readiness`);
      assert.equal(portNumber(s.container, at(s.container, 'livenessProbe', 'httpGet', 'port')), PREFAULTER_PORT);
      assert.equal(portNumber(s.container, at(s.container, 'readinessProbe', 'httpGet', 'port')), PREFAULTER_PORT);
    }
  });

  it('runs locked down as Spilo\'s postgres uid where the spec allows', () => {
    for (const s of all) {
      if (s.where.includes('spec.sidecars')) continue; // the image's USER 101:103 applies there
      const sc = at(s.container, 'securityContext');
      assert.equal(at(sc, 'runAsUser'), SPILO_UID, `${s.where}: runAsUser`);
      assert.equal(at(sc, 'runAsGroup'), SPILO_GID, `${s.where}: runAsGroup`);
      assert.equal(at(sc, 'runAsNonRoot'), true, `${s.where}: runAsNonRoot`);
      assert.equal(at(sc, 'readOnlyRootFilesystem'), true, `${s.where}: readOnlyRootFilesystem`);
      assert.equal(at(sc, 'allowPrivilegeEscalation'), false, `${s.where}: allowPrivilegeEscalation`);
      assert.deepEqual(at(sc, 'capabilities', 'drop'), ['ALL'], `${s.where}: capabilities.drop`);
    }
  });

  it('in the StatefulSet: PGDATA read-only, socket dir shared via emptyDir, credentials from the standby secret', () => {
    const ss = loadManifests().find((d) => at(d.value, 'kind') === 'StatefulSet')!.value;
    const pod = at(ss, 'spec', 'template', 'spec');
    const containers = (at(pod, 'containers') ?? []) as Json[];
    const pg = containers.find((c) => at(c, 'name') !== SIDECAR_NAME)!;
    const side = containers.find((c) => at(c, 'name') === SIDECAR_NAME)!;
    const mount = (c: Json, path: string): Json | undefined => ((at(c, 'volumeMounts') ?? []) as Json[]).find((m) => at(m, 'mountPath') === path);
    assert.equal(at(mount(side, '/home/postgres/pgdata'), 'readOnly'), true, 'PGDATA mounted read-only in the sidecar');
    assert.equal(at(mount(side, '/home/postgres/pgdata'), 'name'), at(mount(pg, '/home/postgres/pgdata'), 'name'), 'same PGDATA volume');
    const sock = at(mount(side, '/var/run/postgresql'), 'name');
    assert.equal(at(mount(pg, '/var/run/postgresql'), 'name'), sock, 'socket dir shared by both containers');
    const vol = ((at(pod, 'volumes') ?? []) as Json[]).find((v) => at(v, 'name') === sock);
    assert.ok(at(vol, 'emptyDir') !== undefined, 'socket volume is an emptyDir');
    assert.ok(mount(side, '/tmp') !== undefined, 'writable /tmp for a read-only root filesystem');
    const pgEnv = (name: string): Json | undefined => ((at(pg, 'env') ?? []) as Json[]).find((e) => at(e, 'name') === name);
    assert.equal(at(pgEnv('PGROOT'), 'value'), '/home/postgres/pgdata/pgroot', 'Spilo PGROOT, so PGDATA is ' + SPILO_PGDATA);
  });

  it('streaming sidecars take replication credentials from the cluster\'s standby secret', () => {
    for (const s of all.filter((x) => !x.where.includes('Helm') && !x.where.includes('patch'))) {
      const cluster = s.where.includes('acid-demo') ? 'acid-demo' : 'spilo-demo';
      for (const [name, key] of [['PG_PREFAULTER_REPLICATION_USER', 'username'], ['PG_PREFAULTER_REPLICATION_PASSWORD', 'password']] as const) {
        const e = s.env.find((x) => x.name === name);
        assert.equal(at(e?.valueFrom ?? null, 'secretKeyRef', 'name'), `standby.${cluster}.credentials.postgresql.acid.zalan.do`, `${s.where}: ${name}`);
        assert.equal(at(e?.valueFrom ?? null, 'secretKeyRef', 'key'), key, `${s.where}: ${name} key`);
      }
    }
    const secrets = loadManifests().filter((d) => at(d.value, 'kind') === 'Secret').map((d) => String(at(d.value, 'metadata', 'name')));
    assert.ok(secrets.includes('standby.spilo-demo.credentials.postgresql.acid.zalan.do'), 'the plain StatefulSet ships the standby secret');
  });

  it('sets only PG_PREFAULTER_* variables that are configuration keys', () => {
    const known = new Set([...KEYS.map((k) => k.env), 'PG_PREFAULTER_CONFIG']);
    for (const s of all) {
      for (const e of s.env.filter((x) => x.name.startsWith('PG_PREFAULTER_'))) {
        assert.ok(known.has(e.name), `${s.where}: ${e.name} is not a pg-prefaulter setting (unknown variables are rejected)`);
      }
    }
  });
});

describe('k8s manifests: monitoring targets', () => {
  it('the PodMonitor selects the sidecar pods and scrapes the sidecar\'s named port', () => {
    const pm = loadManifests().find((d) => at(d.value, 'kind') === 'PodMonitor')!.value;
    const selector = (at(pm, 'spec', 'selector', 'matchLabels') ?? {}) as Obj;
    assert.ok(Object.keys(selector).length > 0, 'PodMonitor selects by labels');
    const ss = loadManifests().find((d) => at(d.value, 'kind') === 'StatefulSet')!.value;
    const podLabels = (at(ss, 'spec', 'template', 'metadata', 'labels') ?? {}) as Obj;
    for (const [k, v] of Object.entries(selector)) assert.equal(podLabels[k], v, `StatefulSet pods carry ${k}=${String(v)}`);
    // postgres-operator labels its pods application: spilo (cluster_labels default) and cluster-name.
    assert.deepEqual(selector, { application: 'spilo' });
    const endpoints = (at(pm, 'spec', 'podMetricsEndpoints') ?? []) as Json[];
    assert.equal(endpoints.length, 1);
    for (const s of sidecars()) {
      assert.equal(portNumber(s.container, at(endpoints[0]!, 'port') ?? null), PREFAULTER_PORT, `${s.where}: scraped port`);
    }
    assert.equal(at(endpoints[0]!, 'path'), '/metrics');
    // Relabelings read pod labels that exist on the pods.
    for (const r of (at(endpoints[0]!, 'relabelings') ?? []) as Json[]) {
      for (const src of (at(r, 'sourceLabels') ?? []) as Json[]) {
        const m = /^__meta_kubernetes_pod_label_(.+)$/.exec(String(src));
        if (!m) continue;
        const label = Object.keys(podLabels).find((k) => k.replace(/[^A-Za-z0-9_]/g, '_') === m[1]);
        if (m[1] === 'spilo_role') continue; // set by Patroni at run time
        assert.ok(label, `pods have a label for ${String(src)}`);
      }
    }
    const targets = new Set(endpoints.flatMap((e) => ((at(e, 'relabelings') ?? []) as Json[]).map((r) => at(r, 'targetLabel'))));
    assert.ok(targets.has('pg_cluster'), 'the dashboard\'s cluster variable reads pg_cluster');
  });
});

describe('k8s manifests: kustomize', () => {
  const skip = hasKubectl() ? false : 'kubectl not installed';
  const expected: Record<string, string[]> = {
    spilo: ['ConfigMap', 'Endpoints', 'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount', 'StatefulSet'],
    'postgres-operator': ['ConfigMap', 'postgresql'],
    monitoring: ['ConfigMap', 'PodMonitor', 'PrometheusRule'],
  };

  for (const [dir, kinds] of Object.entries(expected)) {
    it(`kubectl kustomize deploy/k8s/${dir} renders ${kinds.join(', ')}`, { skip }, () => {
      const docs = kustomize(join(K8S_DIR, dir));
      assert.deepEqual([...new Set(docs.map((d) => String(at(d, 'kind'))))].sort(), [...kinds].sort());
      for (const d of docs) {
        if (at(d, 'kind') === 'postgresql') checkPostgresqlCr(d as Obj, `${dir} render`);
        else validateModel(d, `${dir} render: ${String(at(d, 'kind'))}/${String(at(d, 'metadata', 'name'))}`);
      }
    });
  }

  it('the top-level kustomization renders all three, and generated ConfigMaps are the files', { skip }, () => {
    const docs = kustomize(K8S_DIR);
    const kinds = new Set(docs.map((d) => String(at(d, 'kind'))));
    for (const k of Object.values(expected).flat()) assert.ok(kinds.has(k), `top-level render has a ${k}`);
    const dash = docs.find((d) => at(d, 'kind') === 'ConfigMap' && at(d, 'metadata', 'name') === 'pg-prefaulter-dashboard');
    assert.equal(at(dash, 'metadata', 'labels', 'grafana_dashboard'), '1');
    assert.equal(at(dash, 'data', 'pg-prefaulter-dashboard.json'),
      readFileSync(join(K8S_DIR, 'monitoring', 'pg-prefaulter-dashboard.json'), 'utf8'));
    // The StatefulSet points at the hash-suffixed ConfigMap kustomize generated.
    const ss = docs.find((d) => at(d, 'kind') === 'StatefulSet');
    const cmName = ((at(ss ?? null, 'spec', 'template', 'spec', 'volumes') ?? []) as Json[])
      .map((v) => at(v, 'configMap', 'name')).find((n) => typeof n === 'string');
    const cm = docs.find((d) => at(d, 'kind') === 'ConfigMap' && at(d, 'metadata', 'name') === cmName);
    assert.ok(cm, `ConfigMap ${String(cmName)} referenced by the StatefulSet is rendered`);
    assert.equal(at(cm, 'data', 'pg-prefaulter.toml'), readFileSync(join(K8S_DIR, 'spilo', 'pg-prefaulter.toml'), 'utf8'));
    // The CR names its ConfigMap literally: it must be rendered under that exact name.
    const cr = docs.find((d) => at(d, 'kind') === 'postgresql');
    const crCm = ((at(cr ?? null, 'spec', 'additionalVolumes') ?? []) as Json[])
      .map((v) => at(v, 'volumeSource', 'configMap', 'name')).find((n) => typeof n === 'string');
    assert.ok(docs.some((d) => at(d, 'kind') === 'ConfigMap' && at(d, 'metadata', 'name') === crCm), `ConfigMap ${String(crCm)} for the CR is rendered`);
  });

  it('an `images:` override reaches the StatefulSet and the postgresql CR sidecar', { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgpf-kustomize-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        // kustomize accepts only relative paths to other kustomizations.
        `  - ${relative(dir, join(K8S_DIR, 'spilo'))}`,
        `  - ${relative(dir, join(K8S_DIR, 'postgres-operator'))}`,
        'images:',
        '  - name: pg-prefaulter',
        '    newName: registry.example.test/pg-prefaulter',
        '    newTag: "9.9.9"',
        '',
      ].join('\n'));
      const docs = kustomize(dir);
      const images = docs.flatMap((d) => [
        ...((at(d, 'spec', 'template', 'spec', 'containers') ?? []) as Json[]),
        ...((at(d, 'spec', 'sidecars') ?? []) as Json[]),
      ]).filter((c) => at(c, 'name') === SIDECAR_NAME).map((c) => at(c, 'image'));
      assert.deepEqual(images, ['registry.example.test/pg-prefaulter:9.9.9', 'registry.example.test/pg-prefaulter:9.9.9']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
