// What `run` loads before its first recovery hint is what its modules import
// statically: every module and builtin there is start-up time a crash
// recovery waits through (issue #15). The SQL client, the replication client,
// prom-client, pino and the HTTP endpoint load once start-up settled; TOML,
// child processes and vm only when needed. This walks the static imports of
// src/cli/run.ts and fails when one of them comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Static imports only: `import ... from '...'`, `export ... from '...'`, `import '...'`; type-only imports load nothing. */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?[^;'"]*?from\s*(['"])([^'"]+)\2|^import\s*(['"])([^'"]+)\4/gm)) {
    if (m[1]) continue;
    out.push((m[3] ?? m[5])!);
  }
  return out;
}

function reachable(entry: string): Map<string, string> {
  const external = new Map<string, string>(); // specifier -> first importer
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith('.')) queue.push(join(dirname(file), spec));
      else if (!external.has(spec)) external.set(spec, relative(src, file));
    }
  }
  assert.ok(seen.size > 30, `followed run's modules (${seen.size})`);
  return external;
}

test('run imports nothing before its first hint that start-up does not need', () => {
  const external = reachable(join(src, 'cli', 'run.ts'));
  assert.ok(external.has('node:fs'), 'the walk found builtins');
  const deferred = ['postgres', 'pg-protocol', 'prom-client', 'pino', 'smol-toml', 'p-timeout', 'node:http', 'node:child_process', 'node:vm', 'node:tls', 'node:crypto', 'node:worker_threads'];
  const found = deferred.filter((d) => external.has(d)).map((d) => `${d} (imported by ${external.get(d)})`);
  assert.deepEqual(found, [], `statically imported before the first hint: ${found.join(', ')}`);
});
