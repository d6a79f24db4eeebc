// Texts generated from the key table: the run command's --help, the sample
// config file, and the effective-config dump printed by --check.

import { CONFIG_ENV, DEFAULT_CONFIG_FILE, KEYS, type Config, type KeyDef } from './schema.ts';
import { redactedConfig } from './redact.ts';
import { formatDuration, formatSize } from '../units.ts';

const LIBPQ_ENVS = KEYS.flatMap((k) => (k.libpqEnv ? [k.libpqEnv] : []));
const PRECEDENCE = `flags > PG_PREFAULTER_* env > config file > libpq env (${LIBPQ_ENVS.join(', ')}) > defaults`;

function placeholder(k: KeyDef): string {
  switch (k.type) {
    case 'int': return k.auto ? 'N|auto' : 'N';
    case 'size': return 'SIZE';
    case 'duration': return 'DURATION';
    case 'enum': return k.values!.join('|');
    case 'string': return k.key.endsWith('file') || k.key === 'pgdata' || k.key === 'sslrootcert' ? 'PATH' : 'TEXT';
  }
}

function tomlValue(v: string | number): string {
  return typeof v === 'number' ? String(v) : JSON.stringify(v);
}

export function configHelp(): string {
  const lines: string[] = [
    'Usage: pg-prefaulter run [--config FILE] [options]',
    '',
    "Runs the sidecar: follows the local PostgreSQL follower, reads its WAL ahead of replay",
    'and prefaults the pages replay will touch.',
    '',
    `Every option is also a config file key (snake_case) and an env var ${'PG_PREFAULTER_<KEY>'}.`,
    `Precedence: ${PRECEDENCE}.`,
    'Sizes: bytes or a number with B, kB, MB, GB, TB (1024-based), e.g. 32MiB. Durations: ms or a number with us, ms, s, min, h, d.',
    '',
    'Options:',
    `  --config FILE     Config file (TOML); default ./${DEFAULT_CONFIG_FILE} if it exists; env ${CONFIG_ENV}`,
    '  --check           Validate the configuration, print it with secrets redacted, exit 0 (valid) or 2',
    '  -h, --help        Show this help',
  ];
  for (const k of KEYS) {
    const flag = `${k.short ? `${k.short}, ` : '    '}${k.flag} ${placeholder(k)}`;
    lines.push(`  ${flag}`);
    lines.push(`        ${k.description}.`);
    const extra = [`default ${tomlValue(k.default)}`, `env ${k.env}`];
    if (k.libpqEnv) extra.push(`libpq ${k.libpqEnv}`);
    if (k.min !== undefined || k.max !== undefined) extra.push(rangeText(k));
    lines.push(`        (${extra.join('; ')})`);
  }
  return lines.join('\n') + '\n';
}

function rangeText(k: KeyDef): string {
  const fmt = k.type === 'size' ? formatSize : k.type === 'duration' ? formatDuration : String;
  if (k.min !== undefined && k.max !== undefined) return `${fmt(k.min)}..${fmt(k.max)}`;
  return k.min !== undefined ? `>= ${fmt(k.min)}` : `<= ${fmt(k.max!)}`;
}

/** Text as "# " comment lines wrapped at 80 columns. */
function comment(text: string): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const word of text.split(' ')) {
    if (line.length > 1 && line.length + 1 + word.length > 80) {
      lines.push(line);
      line = '#';
    }
    line += ' ' + word;
  }
  lines.push(line);
  return lines;
}

/** The commented sample file (pg-prefaulter.sample.toml is exactly this text). */
export function sampleToml(): string {
  const out: string[] = [
    '# pg-prefaulter configuration (sample, generated from src/config/schema.ts).',
    '#',
    '# Flat keys, no tables. Every key is also a flag --kebab-case and an env var',
    '# PG_PREFAULTER_UPPER_SNAKE.',
    ...comment('Precedence: flags > PG_PREFAULTER_* env > this file > libpq env > defaults; '
      + `the libpq variables read are ${LIBPQ_ENVS.join(', ')} (and PGPASSFILE for passwords).`),
    ...comment('Sizes: bytes or a string with a unit B, kB, MB, GB, TB (1024-based), e.g. "32MiB".'),
    ...comment('Durations: milliseconds or a string with a unit us, ms, s, min, h, d, e.g. "10s".'),
    '# Every line below shows the default; uncomment to change it.',
  ];
  for (const k of KEYS) {
    out.push('');
    out.push(...comment(`${k.description}.`));
    if (k.values) out.push(`# One of: ${k.values.join(', ')}.`);
    if (k.min !== undefined || k.max !== undefined) out.push(`# Range: ${rangeText(k)}.`);
    out.push(`#${k.key} = ${tomlValue(k.default)}`);
  }
  return out.join('\n') + '\n';
}

/**
 * The effective configuration as TOML (valid input again), secrets as "***";
 * what --check prints. With `sources` (LoadResult.sources) each value set
 * somewhere other than the defaults is annotated with where it came from.
 */
export function effectiveConfigToml(c: Config, sources?: Record<string, string>): string {
  const red = redactedConfig(c);
  const out: string[] = [];
  for (const k of KEYS) {
    const v = red[k.field] as string | number;
    const shown = k.type === 'size' ? formatSize(v as number) : k.type === 'duration' ? formatDuration(v as number) : v;
    const from = sources?.[k.key];
    out.push(`${k.key} = ${tomlValue(shown)}${from && from !== 'default' ? `  # ${from}` : ''}`);
  }
  return out.join('\n') + '\n';
}

/** Markdown reference table of every key, for the docs. */
export function configReferenceMarkdown(): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const rows = KEYS.map((k) => {
    const flags = [k.short, k.flag].filter(Boolean).map((f) => `\`${f}\``).join(', ');
    const env = [k.env, k.libpqEnv].filter(Boolean).map((e) => `\`${e}\``).join(', ');
    const allowed = k.values ? ` One of: ${k.values.join(', ')}.` : k.min !== undefined || k.max !== undefined ? ` Range: ${rangeText(k)}.` : '';
    return `| \`${k.key}\` | ${k.type} | \`${tomlValue(k.default)}\` | ${flags} | ${env} | ${cell(k.description)}.${cell(allowed)} |`;
  });
  return [
    `Precedence: ${PRECEDENCE}.`,
    '',
    '| Key | Type | Default | Flags | Environment | Meaning |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n') + '\n';
}
