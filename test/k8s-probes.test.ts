// Every probe in every manifest and Helm values file under deploy/k8s spells
// out each field the API server would otherwise default. postgres-operator
// compares the containers it wants with the ones the API server returns
// (reflect.DeepEqual on the readiness probe, pkg/cluster/cluster.go
// compareContainers), so a field left to the server's default differs on
// every sync and rolls the pods again and again (postgres-operator#1291).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isObj, loadYamlDocs, type Json, type Obj } from './k8s-helpers.ts';

const PROBE_KEYS = new Set(['livenessProbe', 'readinessProbe', 'startupProbe']);
// What k8s.io/kubernetes pkg/apis/core/v1/defaults.go fills in (SetDefaults_Probe,
// SetDefaults_HTTPGetAction); initialDelaySeconds has no default but 0 and
// "absent" are the same in Go, so it is required only for clarity.
const PROBE_FIELDS = ['initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold'];

interface Found { where: string; probe: Obj }

function findProbes(v: Json, where: string, out: Found[] = []): Found[] {
  if (Array.isArray(v)) v.forEach((x, i) => findProbes(x, `${where}[${i}]`, out));
  else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (PROBE_KEYS.has(k) && isObj(x)) out.push({ where: `${where}.${k}`, probe: x });
      else findProbes(x, `${where}.${k}`, out);
    }
  }
  return out;
}

/** Fields the API server would add to this probe; empty when it is complete. */
function missingFields(p: Obj): string[] {
  const missing = PROBE_FIELDS.filter((f) => typeof p[f] !== 'number');
  if (isObj(p.httpGet) && typeof p.httpGet.scheme !== 'string') missing.push('httpGet.scheme');
  if (!isObj(p.httpGet) && !isObj(p.tcpSocket) && !isObj(p.exec) && !isObj(p.grpc)) missing.push('a handler');
  return missing;
}

describe('k8s probes', () => {
  const probes = loadYamlDocs().flatMap((d) => findProbes(d.value, `${d.file}#${d.index}`));

  it('finds the probes of the StatefulSet, the operator\'s global sidecar and the bitnami values', () => {
    const files = new Set(probes.map((p) => p.where.split('#')[0]));
    for (const f of ['deploy/k8s/spilo/statefulset.yaml', 'deploy/k8s/postgres-operator/operator-values-v1.yaml', 'deploy/k8s/bitnami/values.yaml']) {
      assert.ok(files.has(f), `probes in ${f}`);
    }
  });

  it('every probe spells out every field the API server defaults', () => {
    assert.ok(probes.length >= 6, `found ${probes.length} probes`);
    for (const p of probes) {
      assert.deepEqual(missingFields(p.probe), [], `${p.where} leaves fields to the API server's defaults`);
      if (!p.where.endsWith('readinessProbe')) assert.equal(p.probe.successThreshold, 1, `${p.where}: successThreshold must be 1 for liveness/startup`);
    }
  });

  it('a probe with only path and port is reported (control)', () => {
    assert.deepEqual(missingFields({ httpGet: { path: '/healthz', port: 'prefaulter' } }),
      ['initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold', 'httpGet.scheme']);
  });
});
