// A validator for the OpenAPI v3 structural-schema subset that
// CustomResourceDefinitions use (what the API server checks when a custom
// resource is created), so the tests can hold the examples under deploy/k8s
// against the real CRDs of the operator versions we support
// (test/fixtures/postgres-operator/<version>/).
//
// Where Kubernetes would silently prune a field the schema does not declare,
// this reports it: a pruned field is a setting that quietly does nothing.
// A schema keyword this file does not know is an error, so a rule can never be
// skipped without notice.
import { parseAllDocuments } from 'yaml';
import { readFileSync } from 'node:fs';
import { at, isObj, type Json, type Obj } from './k8s-helpers.ts';

const KNOWN = new Set([
  'type', 'enum', 'required', 'properties', 'items', 'additionalProperties', 'pattern', 'minimum', 'maximum',
  'minLength', 'maxLength', 'minItems', 'maxItems', 'nullable', 'oneOf', 'anyOf', 'not', 'format', 'default',
  'description', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys', 'x-kubernetes-map-type',
]);

function typeOf(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v; // string, boolean, object
}

function typeMatches(want: string, v: Json): boolean {
  const got = typeOf(v);
  return got === want || (want === 'number' && got === 'integer');
}

/** Errors of `v` against `schema`, each "path: problem". Empty when valid. */
export function validateSchema(v: Json, schema: Obj, path = ''): string[] {
  const errs: string[] = [];
  const here = path === '' ? '(root)' : path;
  for (const k of Object.keys(schema)) {
    if (!KNOWN.has(k)) errs.push(`${here}: schema keyword "${k}" is not supported by test/k8s-schema.ts`);
  }
  if (v === null) {
    if (schema.nullable !== true && schema['x-kubernetes-preserve-unknown-fields'] !== true) errs.push(`${here}: null is not allowed (not nullable)`);
    return errs;
  }
  if (schema['x-kubernetes-int-or-string'] === true) {
    if (typeof v !== 'string' && !Number.isInteger(v)) errs.push(`${here}: must be an integer or a string, got ${typeOf(v)}`);
  } else if (typeof schema.type === 'string' && !typeMatches(schema.type, v)) {
    errs.push(`${here}: must be ${schema.type}, got ${typeOf(v)} ${JSON.stringify(v)}`);
    return errs; // the rest of the rules assume the type
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    errs.push(`${here}: ${JSON.stringify(v)} is not one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
  }
  if (typeof v === 'string') {
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) errs.push(`${here}: "${v}" does not match ${schema.pattern}`);
    if (typeof schema.minLength === 'number' && v.length < schema.minLength) errs.push(`${here}: shorter than ${schema.minLength}`);
    if (typeof schema.maxLength === 'number' && v.length > schema.maxLength) errs.push(`${here}: longer than ${schema.maxLength}`);
  }
  if (typeof v === 'number') {
    if (typeof schema.minimum === 'number' && v < schema.minimum) errs.push(`${here}: ${v} < minimum ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && v > schema.maximum) errs.push(`${here}: ${v} > maximum ${schema.maximum}`);
  }
  if (Array.isArray(v)) {
    if (typeof schema.minItems === 'number' && v.length < schema.minItems) errs.push(`${here}: fewer than ${schema.minItems} items`);
    if (typeof schema.maxItems === 'number' && v.length > schema.maxItems) errs.push(`${here}: more than ${schema.maxItems} items`);
    if (isObj(schema.items)) v.forEach((item, i) => errs.push(...validateSchema(item, schema.items as Obj, `${path}[${i}]`)));
    errs.push(...listTypeErrors(v, schema, here));
  }
  if (isObj(v)) errs.push(...objectErrors(v, schema, path, here));
  errs.push(...combinatorErrors(v, schema, path, here));
  return errs;
}

function objectErrors(v: Obj, schema: Obj, path: string, here: string): string[] {
  const errs: string[] = [];
  for (const r of (Array.isArray(schema.required) ? schema.required : [])) {
    if (!(String(r) in v)) errs.push(`${here}: required field "${String(r)}" is missing`);
  }
  const props = isObj(schema.properties) ? schema.properties : undefined;
  const extra = schema.additionalProperties;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  for (const [k, val] of Object.entries(v)) {
    const sub = `${path === '' ? '' : path + '.'}${k}`;
    const propSchema = props?.[k];
    if (isObj(propSchema)) errs.push(...validateSchema(val, propSchema, sub));
    else if (isObj(extra)) errs.push(...validateSchema(val, extra, sub));
    else if (extra === true || preserve) continue;
    else if (props !== undefined || extra === false) errs.push(`${sub}: unknown field (the API server prunes it silently)`);
    else if (schema.type === 'object') errs.push(`${sub}: unknown field (the API server prunes it silently)`);
  }
  return errs;
}

function listTypeErrors(v: Json[], schema: Obj, here: string): string[] {
  const type = schema['x-kubernetes-list-type'];
  if (type === 'set') {
    const seen = new Set(v.map((x) => JSON.stringify(x)));
    if (seen.size !== v.length) return [`${here}: duplicate items in a list-type=set`];
  }
  if (type === 'map' && Array.isArray(schema['x-kubernetes-list-map-keys'])) {
    const keys = schema['x-kubernetes-list-map-keys'].map(String);
    const seen = new Set(v.map((x) => JSON.stringify(keys.map((k) => at(x, k) ?? null))));
    if (seen.size !== v.length) return [`${here}: duplicate ${keys.join('+')} in a list-type=map`];
  }
  return [];
}

function combinatorErrors(v: Json, schema: Obj, path: string, here: string): string[] {
  // In structural schemas oneOf/anyOf/not only add constraints (required,
  // types of int-or-string); they never declare fields, so pruning is off here.
  const passes = (s: Json): boolean => isObj(s) && validateSchema(v, { ...s, 'x-kubernetes-preserve-unknown-fields': true }, path).length === 0;
  const errs: string[] = [];
  if (Array.isArray(schema.oneOf)) {
    const n = schema.oneOf.filter(passes).length;
    if (n !== 1) errs.push(`${here}: must match exactly one of oneOf (matches ${n})`);
  }
  if (Array.isArray(schema.anyOf) && !schema.anyOf.some(passes)) errs.push(`${here}: must match at least one of anyOf`);
  if (isObj(schema.not) && passes(schema.not)) errs.push(`${here}: must not match ${JSON.stringify(schema.not)}`);
  return errs;
}

export interface Crd {
  group: string;
  kind: string;
  /** openAPIV3Schema by served version name. */
  versions: Map<string, Obj>;
}

/** Reads a CustomResourceDefinition YAML file (one or more documents). */
export function loadCrd(file: string): Crd {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Json);
  const crd = docs.find((d) => at(d, 'kind') === 'CustomResourceDefinition');
  if (!crd) throw new Error(`${file}: no CustomResourceDefinition`);
  const versions = new Map<string, Obj>();
  for (const ver of (at(crd, 'spec', 'versions') ?? []) as Json[]) {
    const schema = at(ver, 'schema', 'openAPIV3Schema');
    if (isObj(schema)) versions.set(String(at(ver, 'name')), schema);
  }
  return { group: String(at(crd, 'spec', 'group')), kind: String(at(crd, 'spec', 'names', 'kind')), versions };
}

/** Validates a custom resource against the CRD's schema for its apiVersion. */
export function validateCustomResource(cr: Json, crd: Crd): string[] {
  const [group, version] = String(at(cr, 'apiVersion')).split('/');
  if (group !== crd.group || at(cr, 'kind') !== crd.kind) return [`(root): is ${String(at(cr, 'apiVersion'))} ${String(at(cr, 'kind'))}, the CRD is ${crd.group} ${crd.kind}`];
  const schema = crd.versions.get(String(version));
  if (!schema) return [`(root): the CRD serves no version ${String(version)}`];
  // apiVersion, kind and metadata are checked by the API server itself, not the CRD schema.
  const { apiVersion: _a, kind: _k, metadata: _m, ...rest } = cr as Obj;
  const props = { ...(isObj(schema.properties) ? schema.properties : {}) };
  delete props.apiVersion; delete props.kind; delete props.metadata;
  return validateSchema(rest, { ...schema, properties: props, required: ((schema.required ?? []) as Json[]).filter((r) => !['apiVersion', 'kind', 'metadata'].includes(String(r))) });
}
