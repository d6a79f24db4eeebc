// Helpers for the Kubernetes packaging tests (test/k8s-*.test.ts): reading the
// manifests under deploy/k8s, pulling metric names out of the PromQL in the
// dashboard and alert rules, finding the pg-prefaulter sidecar in each way of
// deploying it, and parsing the Dockerfile.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
export const K8S_DIR = join(REPO, 'deploy', 'k8s');
export const MONITORING_DIR = join(K8S_DIR, 'monitoring');
export const SIDECAR_NAME = 'pg-prefaulter';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Walks a path of keys / indexes; undefined when any step is missing. */
export function at(v: Json | undefined, ...path: (string | number)[]): Json | undefined {
  let cur: Json | undefined = v;
  for (const p of path) {
    if (typeof p === 'number') cur = Array.isArray(cur) ? cur[p] : undefined;
    else cur = isObj(cur) ? cur[p] : undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

function walkFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walkFiles(p, out);
    else out.push(p);
  }
  return out;
}

export function yamlFiles(): string[] {
  return walkFiles(K8S_DIR).filter((p) => /\.ya?ml$/.test(p));
}

export interface YamlDoc {
  /** Path relative to the repo root. */
  file: string;
  index: number;
  value: Json;
}

/** Every YAML document under deploy/k8s; throws naming the file on a parse error. */
export function loadYamlDocs(): YamlDoc[] {
  const docs: YamlDoc[] = [];
  for (const path of yamlFiles()) {
    const file = relative(REPO, path);
    parseAllDocuments(readFileSync(path, 'utf8')).forEach((doc, index) => {
      if (doc.errors.length > 0) throw new Error(`${file} document ${index}: ${doc.errors[0]!.message}`);
      const value = doc.toJS() as Json;
      if (value !== null) docs.push({ file, index, value });
    });
  }
  return docs;
}

export function isKustomization(v: Json): boolean {
  return isObj(v) && v.kind === 'Kustomization';
}

/** Kubernetes objects (apiVersion + kind), not kustomizations or Helm values. */
export function loadManifests(): YamlDoc[] {
  return loadYamlDocs().filter((d) => isObj(d.value) && typeof d.value.apiVersion === 'string'
    && typeof d.value.kind === 'string' && !isKustomization(d.value));
}

export function readYaml(path: string): Json {
  return parseYaml(readFileSync(path, 'utf8')) as Json;
}

// ---------------------------------------------------------------- PromQL ---

const PROMQL_KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset',
  'inf', 'nan', 'atan2',
]);

/**
 * Metric names referenced by one PromQL expression (or Grafana variable
 * query). String literals, label matchers {...}, ranges [...], grouping
 * clauses by/on/...(...), Grafana $variables and function names are removed
 * before identifiers are collected.
 */
export function promqlMetricNames(expr: string): Set<string> {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$\{[^}]*\}|\$__\w+|\$\w+/g, ' ');
  // Label matchers and ranges do not nest, so one pass each is enough.
  s = s.replace(/\{[^{}]*\}/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  // Grafana variable query label_values(metric, label): keep only the metric.
  s = s.replace(/label_values\(\s*([^,()]*?)\s*(?:,[^()]*)?\)/g, ' $1 ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const next = s.slice(m.index! + word.length).trimStart();
    if (next.startsWith('(')) continue; // a function call
    if (PROMQL_KEYWORDS.has(word.toLowerCase())) continue;
    // The tail of a number or duration (1e3, 5m) is no name.
    if (m.index! > 0 && /[0-9.]/.test(s[m.index! - 1]!)) continue;
    names.add(word);
  }
  return names;
}

/** Every PromQL expression in the Grafana dashboard: panel targets and variable queries. */
export function dashboardExprs(dashboard: Json): string[] {
  const exprs: string[] = [];
  const panels = (at(dashboard, 'panels') ?? []) as Json[];
  const visit = (p: Json): void => {
    for (const t of (at(p, 'targets') ?? []) as Json[]) {
      const e = at(t, 'expr');
      if (typeof e === 'string') exprs.push(e);
    }
    for (const child of (at(p, 'panels') ?? []) as Json[]) visit(child);
  };
  panels.forEach(visit);
  for (const v of (at(dashboard, 'templating', 'list') ?? []) as Json[]) {
    if (at(v, 'type') !== 'query') continue;
    const q = at(v, 'query');
    const text = typeof q === 'string' ? q : at(q ?? null, 'query');
    if (typeof text === 'string') exprs.push(text);
  }
  return exprs;
}

export function loadDashboard(): Json {
  return JSON.parse(readFileSync(join(MONITORING_DIR, 'pg-prefaulter-dashboard.json'), 'utf8')) as Json;
}

/** Every alert/record expression in the PrometheusRule manifests. */
export function ruleExprs(): { name: string; expr: string }[] {
  const out: { name: string; expr: string }[] = [];
  for (const d of loadManifests()) {
    if (at(d.value, 'kind') !== 'PrometheusRule') continue;
    for (const g of (at(d.value, 'spec', 'groups') ?? []) as Json[]) {
      for (const r of (at(g, 'rules') ?? []) as Json[]) {
        const expr = at(r, 'expr');
        const name = at(r, 'alert') ?? at(r, 'record');
        if (typeof expr === 'string') out.push({ name: String(name), expr });
      }
    }
  }
  return out;
}

/** Metric names used by the Grafana dashboard and the alert rules (deploy/k8s/monitoring). */
export function metricNamesUsed(): Set<string> {
  const names = new Set<string>();
  const exprs = [...dashboardExprs(loadDashboard()), ...ruleExprs().map((r) => r.expr)];
  for (const e of exprs) for (const n of promqlMetricNames(e)) names.add(n);
  return names;
}

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

/**
 * The family a sample name belongs to, given the exported family names
 * (histogram _bucket/_sum/_count resolve to their histogram); undefined when
 * it is none of them. Counters (…_total) have no such series.
 */
export function metricFamily(name: string, families: ReadonlySet<string>): string | undefined {
  if (families.has(name)) return name;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    const family = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && families.has(family) && !family.endsWith('_total')) return family;
  }
  return undefined;
}

// ------------------------------------------------------------- Dockerfile ---

export interface DockerInstruction {
  /** Upper-case instruction keyword. */
  op: string;
  /** Text after the keyword, continuation lines joined. */
  args: string;
  /** 0-based stage index (FROM starts a new stage). */
  stage: number;
}

export function parseDockerfile(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    if (pending !== '' && line.trimStart().startsWith('#')) continue; // comments inside continuations
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage += 1;
    out.push({ op, args: m[2]!.trim(), stage });
  }
  return out;
}

/** Exec-form (JSON array) arguments of ENTRYPOINT / CMD; throws on shell form. */
export function execForm(instr: DockerInstruction): string[] {
  let v: unknown;
  try {
    v = JSON.parse(instr.args);
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new Error(`${instr.op} must be in exec form (a JSON array of strings), got: ${instr.args}`);
  }
  return v as string[];
}

/** ENV key=value pairs (only the key=value form). */
export function envPairs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    const raw = m[2]!;
    out[m[1]!] = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
  }
  return out;
}

export function loadDockerfile(): DockerInstruction[] {
  return parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
}

/** The runtime image's view: last stage's ENV, WORKDIR, USER, ENTRYPOINT, CMD. */
export function runtimeImage(instrs: DockerInstruction[]): {
  env: Record<string, string>; workdir: string; user: string; entrypoint: string[]; cmd: string[];
} {
  const last = Math.max(...instrs.map((i) => i.stage));
  const rt = instrs.filter((i) => i.stage === last);
  const env: Record<string, string> = {};
  for (const i of rt.filter((i) => i.op === 'ENV')) Object.assign(env, envPairs(i.args));
  const lastOf = (op: string): DockerInstruction | undefined => rt.filter((i) => i.op === op).at(-1);
  const ep = lastOf('ENTRYPOINT');
  const cmd = lastOf('CMD');
  return {
    env,
    workdir: lastOf('WORKDIR')?.args ?? '/',
    user: lastOf('USER')?.args ?? '',
    entrypoint: ep ? execForm(ep) : [],
    cmd: cmd ? execForm(cmd) : [],
  };
}

// ----------------------------------------------------------- the sidecar ---

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Json;
}

export interface SidecarSpec {
  /** Where it was found, for messages. */
  where: string;
  command?: string[];
  args?: string[];
  /** As the kubelet sees it, in order (operator-injected variables first where the operator adds them). */
  env: EnvVar[];
  /** Files the container sees from ConfigMaps: mount path -> content. */
  files: Map<string, string>;
  container: Obj;
}

/** Variables postgres-operator prepends to every sidecar (pkg/cluster/k8sres.go patchSidecarContainers). */
function operatorInjectedEnv(cluster: string): EnvVar[] {
  return [
    { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
    { name: 'POSTGRES_USER', value: 'postgres' },
    { name: 'POSTGRES_PASSWORD', valueFrom: { secretKeyRef: { name: `postgres.${cluster}.credentials.postgresql.acid.zalan.do`, key: 'password' } } },
  ];
}

/** ConfigMaps from each kustomization's configMapGenerator: name -> key -> content. */
export function generatedConfigMaps(): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const path of yamlFiles().filter((p) => /kustomization\.ya?ml$/.test(p))) {
    const k = readYaml(path);
    for (const g of (at(k, 'configMapGenerator') ?? []) as Json[]) {
      const name = String(at(g, 'name'));
      const data = out.get(name) ?? new Map<string, string>();
      for (const f of (at(g, 'files') ?? []) as Json[]) {
        const [key, file] = String(f).includes('=') ? String(f).split('=', 2) as [string, string] : [String(f).split('/').at(-1)!, String(f)];
        data.set(key, readFileSync(join(dirname(path), file), 'utf8'));
      }
      out.set(name, data);
    }
  }
  return out;
}

function configMapFiles(configMapName: string, mountPath: string, subPath?: string): Map<string, string> {
  const files = new Map<string, string>();
  const data = generatedConfigMaps().get(configMapName);
  if (!data) throw new Error(`ConfigMap ${configMapName} is mounted at ${mountPath} but no configMapGenerator makes it`);
  for (const [key, content] of data) {
    if (subPath === undefined) files.set(`${mountPath}/${key}`, content);
    else if (subPath === key) files.set(mountPath, content);
  }
  return files;
}

function asEnv(v: Json | undefined): EnvVar[] {
  return ((v ?? []) as Json[]).map((e) => {
    const o = e as Obj;
    const ev: EnvVar = { name: String(o.name) };
    if (typeof o.value === 'string') ev.value = o.value;
    if (o.valueFrom !== undefined) ev.valueFrom = o.valueFrom;
    return ev;
  });
}

function strings(v: Json | undefined): string[] | undefined {
  return Array.isArray(v) ? v.map(String) : undefined;
}

/** The pg-prefaulter container in each way of deploying it. */
export function sidecars(): SidecarSpec[] {
  const out: SidecarSpec[] = [];
  for (const d of loadManifests()) {
    const v = d.value as Obj;
    if (v.kind === 'StatefulSet' || v.kind === 'Deployment' || v.kind === 'DaemonSet') {
      const spec = at(v, 'spec', 'template', 'spec');
      const volumes = (at(spec, 'volumes') ?? []) as Json[];
      for (const c of (at(spec, 'containers') ?? []) as Json[]) {
        if (at(c, 'name') !== SIDECAR_NAME) continue;
        const files = new Map<string, string>();
        for (const m of (at(c, 'volumeMounts') ?? []) as Json[]) {
          const vol = volumes.find((x) => at(x, 'name') === at(m, 'name'));
          const cm = at(vol, 'configMap', 'name');
          if (typeof cm === 'string') {
            const sub = at(m, 'subPath');
            for (const [p, t] of configMapFiles(cm, String(at(m, 'mountPath')), typeof sub === 'string' ? sub : undefined)) files.set(p, t);
          }
        }
        const s: SidecarSpec = { where: `${d.file} (${v.kind})`, env: asEnv(at(c, 'env')), files, container: c as Obj };
        const command = strings(at(c, 'command'));
        const args = strings(at(c, 'args'));
        if (command) s.command = command;
        if (args) s.args = args;
        out.push(s);
      }
    }
    if (v.apiVersion === 'acid.zalan.do/v1' && v.kind === 'postgresql') {
      const cluster = String(at(v, 'metadata', 'name'));
      for (const c of (at(v, 'spec', 'sidecars') ?? []) as Json[]) {
        if (at(c, 'name') !== SIDECAR_NAME) continue;
        const files = new Map<string, string>();
        for (const av of (at(v, 'spec', 'additionalVolumes') ?? []) as Json[]) {
          const targets = (at(av, 'targetContainers') ?? []) as Json[];
          if (!targets.includes('all') && !targets.includes(SIDECAR_NAME)) continue;
          const cm = at(av, 'volumeSource', 'configMap', 'name');
          if (typeof cm === 'string') {
            const sub = at(av, 'subPath');
            for (const [p, t] of configMapFiles(cm, String(at(av, 'mountPath')), typeof sub === 'string' ? sub : undefined)) files.set(p, t);
          }
        }
        const s: SidecarSpec = {
          where: `${d.file} (postgresql ${cluster} spec.sidecars)`,
          env: [...operatorInjectedEnv(cluster), ...asEnv(at(c, 'env'))],
          files,
          container: c as Obj,
        };
        const command = strings(at(c, 'command'));
        if (command) s.command = command;
        out.push(s);
      }
    }
  }
  // The merge patch for one existing cluster (no ConfigMap: env only).
  const patch = join(K8S_DIR, 'postgres-operator', 'sidecar-patch.yaml');
  for (const c of (at(readYaml(patch), 'spec', 'sidecars') ?? []) as Json[]) {
    if (at(c, 'name') !== SIDECAR_NAME) continue;
    const s: SidecarSpec = {
      where: `${relative(REPO, patch)} (postgresql patch spec.sidecars)`,
      env: [...operatorInjectedEnv('any-cluster'), ...asEnv(at(c, 'env'))],
      files: new Map(),
      container: c as Obj,
    };
    const command = strings(at(c, 'command'));
    if (command) s.command = command;
    out.push(s);
  }
  const values = join(K8S_DIR, 'postgres-operator', 'operator-values-v1.yaml');
  for (const c of (at(readYaml(values), 'configGeneral', 'sidecars') ?? []) as Json[]) {
    if (at(c, 'name') !== SIDECAR_NAME) continue;
    const s: SidecarSpec = {
      where: `${relative(REPO, values)} (Helm configGeneral.sidecars)`,
      env: [...operatorInjectedEnv('any-cluster'), ...asEnv(at(c, 'env'))],
      files: new Map(),
      container: c as Obj,
    };
    const command = strings(at(c, 'command'));
    const args = strings(at(c, 'args'));
    if (command) s.command = command;
    if (args) s.args = args;
    out.push(s);
  }
  return out;
}

/** The argv the kubelet runs: command/args override ENTRYPOINT/CMD as Kubernetes defines it. */
export function containerArgv(s: SidecarSpec, image: { entrypoint: string[]; cmd: string[] }): string[] {
  if (s.command) return [...s.command, ...(s.args ?? [])];
  return [...image.entrypoint, ...(s.args ?? image.cmd)];
}

/**
 * Resolves the container env as the kubelet would: $(VAR) expands to an
 * earlier variable ($$ escapes), unresolved references stay as written;
 * valueFrom is filled by `fromSource` (e.g. test values for secrets).
 */
export function resolveEnv(env: EnvVar[], fromSource: (e: EnvVar) => string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    if (e.value === undefined) {
      out[e.name] = fromSource(e);
      continue;
    }
    out[e.name] = e.value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
      if (whole === '$$') return '$';
      return name !== undefined && name in out ? out[name]! : whole;
    });
  }
  return out;
}
