// The alert rules (deploy/k8s/monitoring/prometheusrule.yaml): promtool
// accepts them, its unit tests (test/fixtures/alerts) show every alert firing
// when it should and staying quiet when it should not, every alert links a
// runbook section that exists in docs/kubernetes.md, and the PodMonitor and
// PrometheusRule carry the `release` label kube-prometheus-stack selects on.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import { at, K8S_DIR, loadManifests, MONITORING_DIR, readYaml, REPO, type Json } from './k8s-helpers.ts';

const UNIT_TESTS = join(REPO, 'test', 'fixtures', 'alerts', 'pg-prefaulter.promtool-test.yaml');
const DOCS = join(REPO, 'docs', 'kubernetes.md');
const HAS_PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;

/** Fails in CI (CI=true) when promtool is missing; skips loudly elsewhere. */
function needPromtool(t: TestContext): boolean {
  if (HAS_PROMTOOL) return true;
  assert.notEqual(process.env.CI, 'true', 'promtool is not installed: .ci/run installs it (Debian package prometheus)');
  t.diagnostic('promtool NOT installed: the alert rules are NOT checked (apt-get install prometheus)');
  t.skip('promtool not installed: alert rules NOT checked');
  return false;
}

function ruleGroups(): Json {
  const rule = loadManifests().find((d) => at(d.value, 'kind') === 'PrometheusRule');
  assert.ok(rule, 'a PrometheusRule');
  return at(rule.value, 'spec', 'groups')!;
}

function alerts(): { alert: string; annotations: Record<string, string> }[] {
  return ((ruleGroups() as Json[]).flatMap((g) => (at(g, 'rules') ?? []) as Json[]))
    .filter((r) => typeof at(r, 'alert') === 'string')
    .map((r) => ({ alert: String(at(r, 'alert')), annotations: (at(r, 'annotations') ?? {}) as Record<string, string> }));
}

/** GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces to -. */
function githubAnchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (m) out.add(m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-'));
  }
  return out;
}

const work = mkdtempSync(join(tmpdir(), 'pgpf-alerts-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Writes the rules as a Prometheus rule file and the unit tests next to it; returns promtool's result. */
function promtool(args: string[], groups: Json = ruleGroups()): { status: number | null; out: string } {
  writeFileSync(join(work, 'rules.yaml'), stringify({ groups }));
  copyFileSync(UNIT_TESTS, join(work, 'tests.yaml'));
  const r = spawnSync('promtool', args, { cwd: work, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('k8s alerts: promtool', () => {
  it('promtool check rules accepts the PrometheusRule\'s groups', (t) => {
    if (!needPromtool(t)) return;
    const r = promtool(['check', 'rules', 'rules.yaml']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, new RegExp(`SUCCESS: ${alerts().length} rules found`));
  });

  it('promtool test rules: every alert fires when it should and stays quiet when not', (t) => {
    if (!needPromtool(t)) return;
    const r = promtool(['test', 'rules', 'tests.yaml']);
    assert.equal(r.status, 0, r.out);
  });

  it('the unit tests cover every alert both ways', () => {
    const tests = (at(readYaml(UNIT_TESTS), 'tests') ?? []) as Json[];
    const cases = tests.flatMap((x) => (at(x, 'alert_rule_test') ?? []) as Json[]);
    for (const { alert } of alerts()) {
      const mine = cases.filter((c) => at(c, 'alertname') === alert);
      assert.ok(mine.some((c) => ((at(c, 'exp_alerts') ?? []) as Json[]).length > 0), `${alert}: a case where it fires`);
      assert.ok(mine.some((c) => ((at(c, 'exp_alerts') ?? []) as Json[]).length === 0), `${alert}: a case where it stays quiet`);
    }
  });

  it('a rule with a wrong threshold fails its unit test (control)', (t) => {
    if (!needPromtool(t)) return;
    const groups = structuredClone(ruleGroups()) as Json[];
    const rule = ((at(groups[0]!, 'rules') ?? []) as Json[]).find((x) => at(x, 'alert') === 'PgPrefaulterReplayLagHigh') as { expr: string };
    rule.expr = rule.expr.replace('> 300', '> 500');
    const r = promtool(['test', 'rules', 'tests.yaml'], groups);
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /PgPrefaulterReplayLagHigh/);
  });
});

describe('k8s alerts: runbooks and selection', () => {
  it('every alert has a summary, a description and a runbook_url into a section of docs/kubernetes.md that exists', () => {
    const anchors = githubAnchors(readFileSync(DOCS, 'utf8'));
    const list = alerts();
    assert.ok(list.length >= 6);
    for (const a of list) {
      for (const k of ['summary', 'description', 'runbook_url']) assert.ok(a.annotations[k], `${a.alert}: annotation ${k}`);
      const m = /^https:\/\/\S+\/docs\/kubernetes\.md#([a-z0-9_-]+)$/.exec(a.annotations.runbook_url!);
      assert.ok(m, `${a.alert}: runbook_url points into docs/kubernetes.md: ${a.annotations.runbook_url}`);
      assert.ok(anchors.has(m[1]!), `${a.alert}: docs/kubernetes.md has no heading for #${m[1]}`);
    }
    assert.ok(!anchors.has('nonexistent-section'), 'control');
  });

  it('every #anchor link in docs/kubernetes.md points to a heading there', () => {
    const text = readFileSync(DOCS, 'utf8');
    const anchors = githubAnchors(text);
    const links = [...text.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    assert.ok(links.length >= 5, `found ${links.length} links`);
    for (const l of links) assert.ok(anchors.has(l), `docs/kubernetes.md links #${l}, which is no heading`);
  });

  it('PodMonitor and PrometheusRule carry the release label the kustomization sets', () => {
    const k = readYaml(join(MONITORING_DIR, 'kustomization.yaml'));
    const release = at(k, 'labels', 0, 'pairs', 'release');
    assert.equal(typeof release, 'string', 'monitoring/kustomization.yaml sets labels.pairs.release');
    assert.equal(at(k, 'labels', 0, 'includeSelectors'), false, 'the release label must not change selectors');
    for (const kind of ['PodMonitor', 'PrometheusRule']) {
      const m = loadManifests().find((d) => at(d.value, 'kind') === kind);
      assert.equal(at(m?.value ?? null, 'metadata', 'labels', 'release'), release, `${kind} has release=${String(release)} without kustomize too`);
    }
  });

  const skip = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0 ? false : 'kubectl not installed';
  it('an overlay sets the release label on both (the documented recipe)', { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgpf-release-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${relative(dir, join(K8S_DIR, 'monitoring'))}`,
        'labels:',
        '  - pairs:',
        '      release: my-prometheus',
        '    includeSelectors: false',
        '',
      ].join('\n'));
      const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
      const docs = parseAllDocuments(out).map((d) => d.toJS() as Json);
      for (const kind of ['PodMonitor', 'PrometheusRule']) {
        const d = docs.find((x) => at(x, 'kind') === kind);
        assert.equal(at(d ?? null, 'metadata', 'labels', 'release'), 'my-prometheus', kind);
      }
      const pm = docs.find((x) => at(x, 'kind') === 'PodMonitor');
      assert.deepEqual(at(pm ?? null, 'spec', 'selector', 'matchLabels'), { application: 'spilo' }, 'selector unchanged');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
