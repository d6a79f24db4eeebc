// The postgres-operator examples under deploy/k8s/postgres-operator hold up
// against the real CRDs of the operator versions docs/kubernetes.md names
// (copied from zalando/postgres-operator into test/fixtures/postgres-operator):
// each operator line has a working pair of Helm values + cluster manifest, the
// values are rendered into the OperatorConfiguration the way the chart's
// template does, and both are validated with the API server's rules (types,
// enums, required fields, patterns, fields it would prune).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { at, isObj, K8S_DIR, loadManifests, readYaml, REPO, SIDECAR_NAME, type Json, type Obj } from './k8s-helpers.ts';
import { loadCrd, validateCustomResource, validateSchema, type Crd } from './k8s-schema.ts';

const OPERATOR_DIR = join(K8S_DIR, 'postgres-operator');
const FIXTURES = join(REPO, 'test', 'fixtures', 'postgres-operator');
const SOCKET_DIR = '/var/run/postgresql';

/** Each supported operator release and the example pair that works on it. */
const PAIRS = [
  { version: '1.14.0', values: 'operator-values-v1.yaml', cluster: 'cluster-global.yaml' },
  { version: '1.15.1', values: 'operator-values-v1.yaml', cluster: 'cluster-global.yaml' },
  { version: '2.0.1', values: 'operator-values-v2.yaml', cluster: 'postgresql.yaml' },
] as const;
const VERSIONS = [...new Set(PAIRS.map((p) => p.version))];

interface Release { postgresql: Crd; operatorConfiguration: Crd; chartValues: Obj }

const releases = new Map<string, Release>(VERSIONS.map((v) => [v, {
  postgresql: loadCrd(join(FIXTURES, `v${v}`, 'postgresqls.yaml')),
  operatorConfiguration: loadCrd(join(FIXTURES, `v${v}`, 'operatorconfigurations.yaml')),
  chartValues: readYaml(join(FIXTURES, `v${v}`, 'values.yaml')) as Obj,
}]));

function release(v: string): Release {
  const r = releases.get(v);
  assert.ok(r, `no fixtures for postgres-operator ${v}`);
  return r;
}

/** Helm's merge of user values over chart defaults: maps merge, everything else replaces. */
function mergeValues(base: Json, over: Json): Json {
  if (!isObj(base) || !isObj(over)) return over;
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeValues(base[k]!, v) : v;
  return out;
}

/**
 * The OperatorConfiguration the chart renders (templates/operatorconfiguration.yaml,
 * identical in 1.14.0, 1.15.1 and 2.0.1): configGeneral at the top of
 * `configuration`, each other config* section under its own key.
 */
function renderOperatorConfiguration(chartValues: Obj, userValues: Obj): Obj | undefined {
  const v = mergeValues(chartValues, userValues) as Obj;
  if (v.configTarget !== 'OperatorConfigurationCRD') return undefined;
  const section = (k: string): Json => (v[k] ?? {}) as Json;
  return {
    apiVersion: 'acid.zalan.do/v1',
    kind: 'OperatorConfiguration',
    metadata: { name: 'postgres-operator', namespace: 'default' },
    configuration: {
      ...(section('configGeneral') as Obj),
      users: section('configUsers'),
      major_version_upgrade: section('configMajorVersionUpgrade'),
      kubernetes: {
        pod_service_account_name: 'postgres-pod',
        oauth_token_secret_name: 'postgres-operator',
        ...(section('configKubernetes') as Obj),
      },
      postgres_pod_resources: section('configPostgresPodResources'),
      timeouts: section('configTimeouts'),
      load_balancer: section('configLoadBalancer'),
      aws_or_gcp: section('configAwsOrGcp'),
      logical_backup: section('configLogicalBackup'),
      debug: section('configDebug'),
      teams_api: section('configTeamsApi'),
      logging_rest_api: section('configLoggingRestApi'),
      connection_pooler: section('configConnectionPooler'),
      patroni: section('configPatroni'),
    },
  };
}

function clusterCrs(): { file: string; value: Obj }[] {
  return loadManifests().filter((d) => at(d.value, 'kind') === 'postgresql').map((d) => ({ file: d.file, value: d.value as Obj }));
}

function values(file: string): Obj {
  return readYaml(join(OPERATOR_DIR, file)) as Obj;
}

/** A pair's runtime conflicts the schemas cannot see. */
function pairProblems(userValues: Obj, cluster: Obj): string[] {
  const problems: string[] = [];
  const kube = (at(userValues, 'configKubernetes') ?? {}) as Obj;
  const sharesSocket = kube.share_pgsocket_with_sidecars === true;
  const volumes = (at(cluster, 'spec', 'additionalVolumes') ?? []) as Json[];
  if (sharesSocket && volumes.some((v) => at(v, 'mountPath') === SOCKET_DIR)) {
    problems.push(`share_pgsocket_with_sidecars and an additionalVolume both mount ${SOCKET_DIR}: the pods would not be created`);
  }
  const globalSidecars = ((at(userValues, 'configGeneral', 'sidecars') ?? []) as Json[]).map((c) => at(c, 'name'));
  const clusterSidecars = ((at(cluster, 'spec', 'sidecars') ?? []) as Json[]).map((c) => at(c, 'name'));
  if (globalSidecars.length + clusterSidecars.length > 0 && kube.enable_sidecars === false) problems.push('enable_sidecars is off');
  if (globalSidecars.includes(SIDECAR_NAME) && clusterSidecars.includes(SIDECAR_NAME)) problems.push(`${SIDECAR_NAME} both as global and cluster sidecar`);
  if (!globalSidecars.includes(SIDECAR_NAME) && !clusterSidecars.includes(SIDECAR_NAME)) problems.push(`no ${SIDECAR_NAME} sidecar in the pair`);
  const socketShared = sharesSocket || volumes.some((v) => at(v, 'mountPath') === SOCKET_DIR && (at(v, 'targetContainers') as Json[] ?? []).includes('all'));
  if (!socketShared) problems.push(`nothing shares ${SOCKET_DIR} with the sidecar`);
  return problems;
}

/** RFC 7386 JSON merge patch, as `kubectl patch --type merge` applies it. */
function mergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return patch;
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

describe('k8s postgres-operator: examples against the released CRDs', () => {
  for (const pair of PAIRS) {
    it(`operator ${pair.version}: ${pair.values} renders an OperatorConfiguration its CRD accepts`, () => {
      const r = release(pair.version);
      const oc = renderOperatorConfiguration(r.chartValues, values(pair.values));
      assert.ok(oc, `${pair.values}: configTarget must be OperatorConfigurationCRD`);
      assert.deepEqual(validateCustomResource(oc, r.operatorConfiguration), [], `${pair.values} on ${pair.version}`);
    });

    it(`operator ${pair.version}: ${pair.cluster} is accepted and works with ${pair.values}`, () => {
      const r = release(pair.version);
      const cluster = readYaml(join(OPERATOR_DIR, pair.cluster)) as Obj;
      assert.deepEqual(validateCustomResource(cluster, r.postgresql), [], `${pair.cluster} on ${pair.version}`);
      assert.deepEqual(pairProblems(values(pair.values), cluster), [], `${pair.values} + ${pair.cluster}`);
    });
  }

  it('every postgresql manifest under deploy/k8s validates against every supported operator version', () => {
    const crs = clusterCrs();
    assert.ok(crs.length >= 2, 'the per-cluster and the global-sidecar examples');
    for (const v of VERSIONS) {
      for (const cr of crs) assert.deepEqual(validateCustomResource(cr.value, release(v).postgresql), [], `${cr.file} on ${v}`);
    }
  });

  it('sidecar-patch.yaml turns an existing cluster into one with the sidecar on every supported version', () => {
    const patch = readYaml(join(OPERATOR_DIR, 'sidecar-patch.yaml'));
    const patched = mergePatch(readYaml(join(OPERATOR_DIR, 'cluster-global.yaml')), patch) as Obj;
    assert.equal(at(patched, 'spec', 'sidecars', 0, 'name'), SIDECAR_NAME);
    assert.equal(at(patched, 'spec', 'teamId'), 'acid', 'the rest of the cluster is kept');
    for (const v of VERSIONS) assert.deepEqual(validateCustomResource(patched, release(v).postgresql), [], `patched cluster on ${v}`);
    assert.deepEqual(pairProblems(values('operator-values-v2.yaml'), patched), [], 'with the 2.x values (no shared socket)');
    assert.deepEqual(mergePatch({ a: { b: 1, c: 2 }, l: [1] }, { a: { b: null }, l: [2] }), { a: { c: 2 }, l: [2] }, 'control: merge patch semantics');
  });

  it('Helm values use only top-level keys the chart has (Helm ignores the others silently)', () => {
    for (const pair of PAIRS) {
      const known = Object.keys(release(pair.version).chartValues);
      const unknown = Object.keys(values(pair.values)).filter((k) => !known.includes(k));
      assert.deepEqual(unknown, [], `${pair.values} keys not in chart ${pair.version}'s values.yaml`);
    }
  });

  it('controls: the rules the API server applies reject what the released versions reject', () => {
    // 2.0.x types configuration.sidecars as an object (#3159): the v1 global sidecar list is refused.
    const r2 = release('2.0.1');
    const oc = renderOperatorConfiguration(r2.chartValues, values('operator-values-v1.yaml'))!;
    assert.match(validateCustomResource(oc, r2.operatorConfiguration).join('\n'), /configuration\.sidecars: must be object, got array/);
    // PostgreSQL 18 is in 2.x's version enum but not in 1.x's.
    const pg18 = structuredClone(readYaml(join(OPERATOR_DIR, 'postgresql.yaml')) as Obj);
    ((pg18.spec as Obj).postgresql as Obj).version = '18';
    assert.match(validateCustomResource(pg18, release('1.15.1').postgresql).join('\n'), /spec\.postgresql\.version: "18" is not one of/);
    assert.deepEqual(validateCustomResource(pg18, r2.postgresql), []);
    for (const v of VERSIONS) {
      const crd = release(v).postgresql;
      const bad = structuredClone(pg18);
      delete (bad.spec as Obj).teamId;
      (bad.spec as Obj).numberOfInstances = '2';
      ((bad.spec as Obj).postgresql as Obj).parameters = { max_wal_senders: 12 };
      (bad.spec as Obj).notAField = true;
      const errs = validateCustomResource(bad, crd).join('\n');
      assert.match(errs, /spec: required field "teamId" is missing/, v);
      assert.match(errs, /spec\.numberOfInstances: must be integer, got string/, v);
      assert.match(errs, /spec\.postgresql\.parameters\.max_wal_senders: must be string, got integer/, v);
      assert.match(errs, /spec\.notAField: unknown field/, v);
    }
    assert.match(pairProblems(values('operator-values-v1.yaml'), readYaml(join(OPERATOR_DIR, 'postgresql.yaml')) as Obj).join('\n'),
      /both mount \/var\/run\/postgresql/);
  });

  it('the validator knows the keywords, int-or-string, nullable, oneOf and pattern', () => {
    const s = {
      type: 'object', required: ['a'], properties: {
        a: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
        b: { type: 'string', nullable: true, pattern: '^[0-9]+$' },
        c: { type: 'object', oneOf: [{ required: ['x'] }, { required: ['y'] }], properties: { x: { type: 'string' }, y: { type: 'string' } } },
      },
    };
    assert.deepEqual(validateSchema({ a: 1, b: null, c: { x: '1' } }, s), []);
    assert.deepEqual(validateSchema({ a: '1Gi', b: '12' }, s), []);
    assert.match(validateSchema({ a: true }, s).join(), /must be an integer or a string/);
    assert.match(validateSchema({ a: 1, b: 'x' }, s).join(), /does not match/);
    assert.match(validateSchema({ a: 1, c: { x: '1', y: '2' } }, s).join(), /exactly one of oneOf \(matches 2\)/);
    assert.match(validateSchema({ a: 1 }, { ...s, 'x-unknown-rule': 1 }).join(), /not supported/);
  });

  it('the fixtures are the named releases\' CRDs, with their origin and license', () => {
    const note = readFileSync(join(FIXTURES, 'README.md'), 'utf8');
    assert.match(readFileSync(join(FIXTURES, 'LICENSE'), 'utf8'), /MIT License/);
    for (const v of VERSIONS) {
      assert.ok(note.includes(`v${v}`), `README.md in the fixtures names v${v}`);
      assert.equal(at(release(v).chartValues, 'image', 'tag'), `v${v}`, `values.yaml of chart ${v}`);
    }
  });

  it('docs name the versions, add the chart repository and pin --version on every helm command', () => {
    const docs = readFileSync(join(REPO, 'docs', 'kubernetes.md'), 'utf8');
    const files = [docs, ...PAIRS.map((p) => readFileSync(join(OPERATOR_DIR, p.values), 'utf8'))];
    assert.match(docs, /helm repo add postgres-operator-charts https:\/\/opensource\.zalando\.com\/postgres-operator\/charts\/postgres-operator/);
    let installs = 0;
    for (const text of files) {
      for (const cmd of text.replace(/\\\n\s*#?\s*/g, ' ').split('\n').filter((l) => /\bhelm (upgrade|install)\b/.test(l))) {
        installs += 1;
        const m = /--version\s+(\S+)/.exec(cmd);
        assert.ok(m, `helm command without --version: ${cmd.trim()}`);
        if (cmd.includes('postgres-operator-charts/')) assert.ok(VERSIONS.includes(m[1]! as never), `${cmd.trim()}: ${m[1]} is not a version CI validates (${VERSIONS.join(', ')})`);
      }
    }
    assert.ok(installs >= 3, 'the docs and both values files show the helm command');
    for (const v of VERSIONS) assert.ok(docs.includes(v), `docs/kubernetes.md names operator ${v}`);
  });
});
