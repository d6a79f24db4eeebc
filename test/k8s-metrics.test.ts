// The Grafana dashboard and the alert rules only use metrics the binary
// exports, and the dashboard is wired the way Grafana's sidecar expects.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { METRIC_NAMES } from '../src/metrics/index.ts';
import {
  at, dashboardExprs, loadDashboard, metricFamily, metricNamesUsed, promqlMetricNames, readYaml, ruleExprs,
  MONITORING_DIR, type Json,
} from './k8s-helpers.ts';
import { join } from 'node:path';

// prom-client's default metrics (collectDefaultMetrics), Prometheus' own `up`,
// and what kube-prometheus-stack scrapes anyway: cAdvisor (the kubelet) and kube-state-metrics.
const NON_PREFAULTER = /^(process_|nodejs_|container_|kube_)|^up$/;
const FOREIGN_ALLOWED = new Set([
  'process_cpu_seconds_total', 'process_resident_memory_bytes', 'up',
  'container_memory_cache', 'container_memory_working_set_bytes', 'kube_pod_container_resource_limits',
]);

describe('k8s monitoring: metric names', () => {
  it('extracts metric names from PromQL, not functions, labels, variables or numbers', () => {
    assert.deepEqual(
      [...promqlMetricNames(
        'histogram_quantile(0.99, sum by (pod, le) (rate(pg_prefaulter_pread_duration_seconds_bucket{namespace=~"$namespace", pod=~"up"}[$__rate_interval])))',
      )],
      ['pg_prefaulter_pread_duration_seconds_bucket'],
    );
    assert.deepEqual(
      [...promqlMetricNames('max by (a) (x_total) > 4 * 1024 and on (a, b) max by (a) (y_bytes offset 5m) < 1e3 unless up{job="j"} == 0')],
      ['x_total', 'y_bytes', 'up'],
    );
    assert.deepEqual(
      [...promqlMetricNames('label_values(pg_prefaulter_info{namespace=~"$namespace", pg_cluster=~"$cluster"}, pod)')],
      ['pg_prefaulter_info'],
    );
  });

  it('resolves histogram series to their family and rejects unknown names', () => {
    const families = new Set(['h_seconds', 'c_total']);
    assert.equal(metricFamily('h_seconds_bucket', families), 'h_seconds');
    assert.equal(metricFamily('h_seconds_count', families), 'h_seconds');
    assert.equal(metricFamily('c_total', families), 'c_total');
    assert.equal(metricFamily('c_total_bucket', families), undefined);
    assert.equal(metricFamily('nope', families), undefined);
  });

  it('every metric in the dashboard and the alert rules is one pg-prefaulter exports', () => {
    const exported = new Set(METRIC_NAMES);
    const used = metricNamesUsed();
    assert.ok(used.size >= 15, `expected the dashboard and rules to use many metrics, found ${[...used].join(', ')}`);
    const unknown = [...used].filter((n) => !NON_PREFAULTER.test(n) && metricFamily(n, exported) === undefined);
    assert.deepEqual(unknown, [], `used but not in METRIC_NAMES (src/metrics): ${unknown.join(', ')}`);
    const foreign = [...used].filter((n) => NON_PREFAULTER.test(n) && !FOREIGN_ALLOWED.has(n));
    assert.deepEqual(foreign, [], 'only well-known default metrics may be used besides pg_prefaulter_*');
  });

  it('the dashboard covers lag, read-ahead distance, prefault rate, latency, skips, file cache and connection state', () => {
    const used = metricNamesUsed();
    for (const family of [
      'pg_prefaulter_replay_lag_bytes', 'pg_prefaulter_replay_lag_seconds', 'pg_prefaulter_prefault_ahead_bytes',
      'pg_prefaulter_prefaults_issued_total', 'pg_prefaulter_pread_duration_seconds_bucket',
      'pg_prefaulter_prefaults_skipped_total', 'pg_prefaulter_file_handle_cache_hits_total',
      'pg_prefaulter_file_handle_cache_misses_total', 'pg_prefaulter_state', 'pg_prefaulter_upstream_connected',
      'pg_prefaulter_decode_errors_total', 'pg_prefaulter_timeline', 'pg_prefaulter_io_method',
      'pg_prefaulter_metrics_collect_errors_total', 'container_memory_cache', 'container_memory_working_set_bytes',
    ]) {
      assert.ok(used.has(family), `dashboard/rules do not use ${family}`);
    }
    assert.ok(
      dashboardExprs(loadDashboard()).some((e) => e.includes('histogram_quantile(') && e.includes('pg_prefaulter_pread_duration_seconds_bucket')),
      'pread latency is shown as histogram_quantile over the _bucket series',
    );
  });

  it('every expression has balanced brackets and quotes (a cheap PromQL syntax check)', () => {
    const exprs = [...dashboardExprs(loadDashboard()), ...ruleExprs().map((r) => r.expr)];
    assert.ok(exprs.length > 20);
    for (const e of exprs) {
      const stack: string[] = [];
      const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
      // Complete string literals out; a quote left over is an unclosed string.
      const unquoted = e.replace(/"(?:[^"\\]|\\.)*"/g, ' ');
      assert.ok(!unquoted.includes('"'), `unbalanced quote in: ${e}`);
      for (const ch of unquoted) {
        if ('([{'.includes(ch)) stack.push(ch);
        else if (ch in pairs) assert.equal(stack.pop(), pairs[ch], `unbalanced ${ch} in: ${e}`);
      }
      assert.deepEqual(stack, [], `unclosed ${stack.join('')} in: ${e}`);
    }
  });

  it('the alert rules cover lag, not streaming on a standby, decode errors and falling behind replay', () => {
    const rules = ruleExprs();
    const by = (pred: (e: string) => boolean): string[] => rules.filter((r) => pred(r.expr)).map((r) => r.name);
    assert.ok(by((e) => e.includes('pg_prefaulter_replay_lag_seconds')).length > 0, 'replay lag alert');
    assert.ok(by((e) => e.includes('role="standby"') && e.includes('pg_prefaulter_state')).length > 0, 'not streaming on standby alert');
    assert.ok(by((e) => /increase\(pg_prefaulter_decode_errors_total/.test(e)).length > 0, 'decode errors alert');
    assert.ok(by((e) => e.includes('pg_prefaulter_prefault_ahead_bytes') && e.includes('pg_prefaulter_replay_lag_bytes')).length > 0,
      'falling-behind alert');
    const names = rules.map((r) => r.name);
    assert.equal(new Set(names).size, names.length, `alert names are unique: ${names.join(', ')}`);
  });
});

describe('k8s monitoring: Grafana dashboard', () => {
  const dashboard = loadDashboard();

  it('has datasource, Kubernetes cluster, namespace, pg_cluster and pod variables, and every panel uses the datasource variable', () => {
    const vars = ((at(dashboard, 'templating', 'list') ?? []) as Json[]).map((v) => [at(v, 'name'), at(v, 'type')]);
    assert.deepEqual(vars, [['datasource', 'datasource'], ['cluster', 'query'], ['namespace', 'query'], ['pg_cluster', 'query'], ['pod', 'query']]);
    // kube-prometheus dashboards: `cluster` is the Kubernetes cluster label; "All" (.*) also matches series without it.
    const cluster = ((at(dashboard, 'templating', 'list') ?? []) as Json[]).find((v) => at(v, 'name') === 'cluster');
    assert.equal(at(cluster, 'allValue'), '.*');
    assert.match(String(at(cluster, 'query', 'query')), /label_values\(pg_prefaulter_info, cluster\)/);
    const panels = ((at(dashboard, 'panels') ?? []) as Json[]).filter((p) => at(p, 'type') !== 'row');
    assert.ok(panels.length >= 10, `expected at least 10 panels, got ${panels.length}`);
    for (const p of panels) {
      assert.equal(at(p, 'datasource', 'uid'), '${datasource}', `panel "${String(at(p, 'title'))}" datasource`);
      const targets = (at(p, 'targets') ?? []) as Json[];
      assert.ok(targets.length > 0, `panel "${String(at(p, 'title'))}" has queries`);
      for (const t of targets) {
        const expr = String(at(t, 'expr'));
        const kubelet = /container_|kube_/.test(expr); // cAdvisor / kube-state-metrics series carry no pg_cluster label
        if (/pg_prefaulter_|process_|container_|kube_/.test(expr)) {
          for (const v of kubelet ? ['$cluster', '$namespace', '$pod'] : ['$cluster', '$namespace', '$pg_cluster', '$pod']) {
            assert.ok(expr.includes(v), `panel "${String(at(p, 'title'))}" query filters on ${v}: ${expr}`);
          }
        }
      }
    }
    for (const title of ['Agent state', 'Agent state history', 'Timeline', 'io_method', 'Collection and read errors', 'Page cache charged to the sidecar']) {
      assert.ok(panels.some((p) => at(p, 'title') === title), `a "${title}" panel`);
    }
    // The state panels show whatever `state` values the metric has: no hard-coded list of states.
    for (const p of panels.filter((x) => String(at(x, 'title')).startsWith('Agent state'))) {
      assert.match(String(at(p, 'targets', 0, 'expr')), /by \(pod, state\) \(pg_prefaulter_state\{/);
      assert.deepEqual(at(p, 'fieldConfig', 'defaults', 'mappings') ?? [], [], `"${String(at(p, 'title'))}" maps no state names`);
    }
    const ids = ((at(dashboard, 'panels') ?? []) as Json[]).map((p) => at(p, 'id'));
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  });

  it('is shipped as a ConfigMap generated from the JSON file, labelled for the Grafana sidecar', () => {
    const k = readYaml(join(MONITORING_DIR, 'kustomization.yaml'));
    const gens = (at(k, 'configMapGenerator') ?? []) as Json[];
    const gen = gens.find((g) => ((at(g, 'files') ?? []) as Json[]).includes('pg-prefaulter-dashboard.json'));
    assert.ok(gen, 'a configMapGenerator entry uses pg-prefaulter-dashboard.json');
    assert.equal(at(gen, 'options', 'labels', 'grafana_dashboard'), '1');
  });
});
