// loadConfig: merges flags > PG_PREFAULTER_* env > config file > libpq env > defaults.
// Pure apart from reading the config file (and checking secret files exist),
// so the agent can call it again on SIGHUP.

import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';
import { ArgError, parseArgs, type FlagSpec } from '../args.ts';
import { ConfigError } from './errors.ts';
import { parseListen } from './listen.ts';
import {
  CONFIG_ENV, DEFAULT_CONFIG_FILE, ENV_PREFIX, KEYS, KEYS_BY_NAME, OTHER_COMMAND_ENVS, type Config, type KeyDef,
} from './schema.ts';
import { formatDuration, formatSize, parseDuration, parseSize } from '../units.ts';

export interface LoadArgs {
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** Directory for the default ./pg-prefaulter.toml and relative --config paths; default process.cwd(). */
  cwd?: string;
}

export interface LoadResult {
  config: Config;
  /** Absolute path of the config file read, or null when none. */
  configPath: string | null;
  check: boolean;
  help: boolean;
  /** Where each key's value came from, by snake_case key: "default", "flag --port", "env PGPORT", "/etc/x.toml:port". */
  sources: Record<string, string>;
}

type Value = string | number;

/** Precedence order, highest first. */
type Layer = 'flag' | 'env' | 'file' | 'libpq' | 'default';

interface Setting {
  value: Value;
  layer: Layer;
  source: string;
}

// --config and --check are flags of `run`, not settings.
const CONFIG_FLAG = { flag: '--config', value: true } as const;
const CHECK_FLAG = { flag: '--check', value: false } as const;
const FLAGS: readonly FlagSpec[] = [...KEYS.map((k) => ({ flag: k.flag, short: k.short, value: true })), CONFIG_FLAG, CHECK_FLAG];
const KEYS_BY_FLAG = new Map(KEYS.map((k) => [k.flag, k]));
const ENVS = new Map(KEYS.map((k) => [k.env, k]));

export function loadConfig(args: LoadArgs): LoadResult {
  const cwd = args.cwd ?? process.cwd();
  const flags = parseArgv(args.argv);
  if (flags.help) {
    return { config: defaultConfig(), configPath: null, check: flags.check, help: true, sources: Object.fromEntries(KEYS.map((k) => [k.key, 'default'])) };
  }

  const fromEnv = readPrefixedEnv(args.env);
  const configPath = locateConfigFile(flags.configPath ?? fromEnv.configPath, cwd);
  const fromFile = configPath ? readConfigFile(configPath.path) : new Map<KeyDef, Setting>();

  const chosen = new Map<KeyDef, Setting>();
  for (const k of KEYS) {
    const s = flags.settings.get(k) ?? fromEnv.settings.get(k) ?? fromFile.get(k) ?? libpqSetting(k, args.env)
      ?? { value: defaultValue(k), layer: 'default' as const, source: 'default' };
    chosen.set(k, s);
  }
  reconcilePasswords(chosen, 'password', 'password_file');
  reconcilePasswords(chosen, 'replication_password', 'replication_password_file');

  const config = {} as Record<keyof Config, Value>;
  const sources: Record<string, string> = {};
  for (const [k, s] of chosen) {
    config[k.field] = s.value;
    sources[k.key] = s.source;
  }
  const result = config as unknown as Config;
  crossCheck(result, chosen);
  return { config: result, configPath: configPath?.path ?? null, check: flags.check, help: false, sources };
}

/** The configuration with nothing set anywhere. */
export function defaultConfig(): Config {
  const config = {} as Record<keyof Config, Value>;
  for (const k of KEYS) config[k.field] = defaultValue(k);
  return config as unknown as Config;
}

function defaultValue(k: KeyDef): Value {
  return convert(k, k.default, 'default');
}

// ---- argv -------------------------------------------------------------------

interface ParsedArgv {
  settings: Map<KeyDef, Setting>;
  configPath: { path: string; source: string } | undefined;
  check: boolean;
  help: boolean;
}

function parseArgv(argv: string[]): ParsedArgv {
  const out: ParsedArgv = { settings: new Map(), configPath: undefined, check: false, help: false };
  if (argv.includes('-h') || argv.includes('--help')) {
    out.help = true;
    out.check = argv.includes('--check');
    return out;
  }
  let uses;
  try {
    ({ uses } = parseArgs(argv, FLAGS));
  } catch (e) {
    if (!(e instanceof ArgError)) throw e;
    const key = KEYS_BY_FLAG.get(e.flag)?.key ?? (e.flag === '--config' ? 'config' : e.flag.replace(/^-+/, ''));
    if (e.kind === 'positional') {
      throw new ConfigError(e.flag, `argument ${JSON.stringify(e.flag)}`,
        'unexpected argument: options take the form --key value or --key=value (see pg-prefaulter run --help)');
    }
    const advice = e.kind === 'unknown' ? `${suggest(e.flag)}; run "pg-prefaulter run --help" for the list` : '';
    throw new ConfigError(key, `flag ${e.flag}`, e.message + advice);
  }
  for (const { spec, given, value } of uses) {
    if (spec === CHECK_FLAG) {
      out.check = true;
      continue;
    }
    const source = `flag ${given === spec.flag ? given : `${given} (${spec.flag})`}`;
    const k = KEYS_BY_FLAG.get(spec.flag);
    if (!k) out.configPath = { path: value!, source };
    else out.settings.set(k, { value: convert(k, value!, source), layer: 'flag', source });
  }
  return out;
}

// ---- environment ----------------------------------------------------------------

function readPrefixedEnv(env: NodeJS.ProcessEnv): { settings: Map<KeyDef, Setting>; configPath: { path: string; source: string } | undefined } {
  const settings = new Map<KeyDef, Setting>();
  let configPath: { path: string; source: string } | undefined;
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined || OTHER_COMMAND_ENVS.includes(name)) continue;
    const source = `env ${name}`;
    if (name === CONFIG_ENV) {
      if (raw !== '') configPath = { path: raw, source };
      continue;
    }
    const k = ENVS.get(name);
    if (!k) {
      throw new ConfigError(name.slice(ENV_PREFIX.length).toLowerCase(), source,
        `unknown setting ${name}${suggest(name)}; the PG_PREFAULTER_ prefix is reserved for settings (see pg-prefaulter run --help)`);
    }
    settings.set(k, { value: convert(k, raw, source), layer: 'env', source });
  }
  return { settings, configPath };
}

/**
 * libpq variables are ambient (set for psql and friends), so one is only
 * validated when it is actually used, i.e. nothing above overrides it.
 */
function libpqSetting(k: KeyDef, env: NodeJS.ProcessEnv): Setting | undefined {
  if (!k.libpqEnv) return undefined;
  const raw = env[k.libpqEnv];
  // libpq treats an empty variable as unset.
  if (raw === undefined || raw === '') return undefined;
  const source = `env ${k.libpqEnv}`;
  return { value: convert(k, raw, source), layer: 'libpq', source };
}

// ---- config file --------------------------------------------------------------------

function locateConfigFile(given: { path: string; source: string } | undefined, cwd: string): { path: string } | null {
  if (given) {
    const path = resolve(cwd, given.path);
    if (!existsSync(path)) throw new ConfigError('config', given.source, `config file ${path} does not exist`);
    return { path };
  }
  const fallback = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(fallback) ? { path: fallback } : null;
}

// smol-toml's CommonJS build, required when a file is read: one file to load at
// start-up against ten ES modules, and none without a config file.
function parseToml(text: string): unknown {
  return (createRequire(import.meta.url)('smol-toml') as typeof import('smol-toml')).parse(text);
}

function readConfigFile(path: string): Map<KeyDef, Setting> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', path, `cannot read config file: ${(err as Error).message}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError('config', path, `not valid TOML: ${(err as Error).message}`);
  }
  const settings = new Map<KeyDef, Setting>();
  for (const [name, value] of Object.entries(doc)) {
    const source = `${path}:${name}`;
    const k = KEYS_BY_NAME.get(name);
    if (!k) {
      const what = value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date)
        ? `unknown table [${name}]: keys are flat (no tables)` : `unknown key ${name}`;
      throw new ConfigError(name, source, `${what}${suggest(name)}; run "pg-prefaulter run --help" or see pg-prefaulter.sample.toml for the keys`);
    }
    settings.set(k, { value: convert(k, value, source), layer: 'file', source });
  }
  return settings;
}

// ---- values ---------------------------------------------------------------------------

function convert(k: KeyDef, input: unknown, source: string): Value {
  const fail = (problem: string): never => {
    // A file source already ends in ":key".
    throw new ConfigError(k.key, source, source.endsWith(`:${k.key}`) ? problem : `${k.key}: ${problem}`);
  };
  switch (k.type) {
    case 'string':
      if (typeof input !== 'string') fail(`expected a string, got ${describe(input)}`);
      return input as string;
    case 'enum':
      if (typeof input !== 'string' || !k.values!.includes(input)) {
        fail(`invalid value ${describe(input)}: expected one of ${k.values!.join(', ')}`);
      }
      return input as string;
    case 'int': {
      if (k.auto && input === 'auto') return 'auto';
      let n: number;
      if (typeof input === 'number' || typeof input === 'bigint') n = Number(input);
      else if (typeof input === 'string' && /^\s*[-+]?\d+\s*$/.test(input)) n = Number(input);
      else return fail(`invalid value ${describe(input)}: expected an integer${rangeSuffix(k)}${k.auto ? ' or "auto"' : ''}`);
      if (!Number.isSafeInteger(n)) fail(`invalid value ${describe(input)}: expected an integer${rangeSuffix(k)}`);
      return checkRange(k, n, String, fail);
    }
    case 'size':
    case 'duration': {
      const parsed = k.type === 'size' ? parseSize(input) : parseDuration(input);
      if (!parsed.ok) return fail(parsed.error);
      return checkRange(k, parsed.value, k.type === 'size' ? formatSize : formatDuration, fail);
    }
  }
}

function checkRange(k: KeyDef, n: number, fmt: (n: number) => string, fail: (p: string) => never): number {
  if ((k.min !== undefined && n < k.min) || (k.max !== undefined && n > k.max)) {
    fail(`${fmt(n)} is out of range: must be ${range(k, fmt)}`);
  }
  return n;
}

function range(k: KeyDef, fmt: (n: number) => string): string {
  if (k.min !== undefined && k.max !== undefined) return `from ${fmt(k.min)} to ${fmt(k.max)}`;
  if (k.min !== undefined) return `at least ${fmt(k.min)}`;
  return k.max !== undefined ? `at most ${fmt(k.max)}` : 'any value';
}

function rangeSuffix(k: KeyDef): string {
  return k.min === undefined && k.max === undefined ? '' : ` ${range(k, String)}`;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v instanceof Date) return 'a date';
  if (Array.isArray(v)) return 'an array';
  if (v !== null && typeof v === 'object') return 'a table';
  return String(v);
}

// ---- rules across keys ------------------------------------------------------------------

/**
 * A password and a password file for the same connection: the file wins over a
 * libpq PGPASSWORD (lower precedence); set explicitly at the same level or above
 * libpq, both together are ambiguous and rejected.
 */
function reconcilePasswords(chosen: Map<KeyDef, Setting>, passwordKey: string, fileKey: string): void {
  const pw = chosen.get(KEYS_BY_NAME.get(passwordKey)!)!;
  const file = chosen.get(KEYS_BY_NAME.get(fileKey)!)!;
  if (pw.value === '' || file.value === '') return;
  if (pw.layer === 'libpq') {
    chosen.set(KEYS_BY_NAME.get(passwordKey)!, { value: '', layer: 'default', source: 'default' });
    return;
  }
  throw new ConfigError(passwordKey, pw.source,
    `${passwordKey} and ${fileKey} (${file.source}) are both set: set only one of them`);
}

function crossCheck(c: Config, chosen: Map<KeyDef, Setting>): void {
  const src = (key: string) => chosen.get(KEYS_BY_NAME.get(key)!)!.source;
  if (c.reconnectMinMs > c.reconnectMaxMs) {
    throw new ConfigError('reconnect_min', src('reconnect_min'),
      `reconnect_min (${formatDuration(c.reconnectMinMs)}) is larger than reconnect_max (${formatDuration(c.reconnectMaxMs)}, ${src('reconnect_max')}): make reconnect_min <= reconnect_max`);
  }
  if (c.metricsListen !== '') {
    const parsed = parseListen(c.metricsListen);
    if (typeof parsed === 'string') throw new ConfigError('metrics_listen', src('metrics_listen'), `metrics_listen: ${parsed}`);
  }
  for (const key of ['password_file', 'replication_password_file', 'sslrootcert'] as const) {
    const path = c[KEYS_BY_NAME.get(key)!.field] as string;
    if (path === '') continue;
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      throw new ConfigError(key, src(key), `${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
}

// ---- suggestions ----------------------------------------------------------------------------

/** ` (did you mean --readahead-bytes?)` for near misses, else "". */
function suggest(given: string): string {
  const style = given.startsWith('--') ? 'flag' : given.startsWith(ENV_PREFIX) ? 'env' : 'key';
  const norm = (s: string) => s.replace(/^--?/, '').replace(ENV_PREFIX, '').toLowerCase().replace(/-/g, '_');
  const target = norm(given);
  let best: KeyDef | undefined;
  let bestDist = Infinity;
  for (const k of KEYS) {
    const d = distance(target, k.key);
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  if (!best || bestDist > Math.max(2, Math.floor(target.length / 3))) return '';
  const name = style === 'flag' ? best.flag : style === 'env' ? best.env : best.key;
  return ` (did you mean ${name}?)`;
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}
