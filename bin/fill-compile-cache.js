#!/usr/bin/env node
// Fills Node's module compile cache (NODE_COMPILE_CACHE, Node 22.1+) with the
// modules `pg-prefaulter run` loads, so that a new pod's sidecar compiles less
// before its first recovery hint (bench/startup.ts --compile-cache measures it).
// The image runs this at build time as the runtime user: the cache is kept
// per Node version and uid, and checked against each file's contents, so a
// stale entry is only a miss. At run time the directory may be read-only.
// The modules only define things when imported; Node writes the cache as this
// process exits. Without NODE_COMPILE_CACHE, or on Node 20, it does nothing.
import module, { createRequire } from 'node:module';
import { readdirSync } from 'node:fs';

// What `run` imports before its first hint (cli/run.js and everything it
// imports), then what it loads once settled (agent/http.js: prom-client and
// the endpoint; follower/follower.js: the SQL client; wal-source/stream.js:
// the replication client). cli/main.js itself runs the CLI when imported: its
// own imports are listed instead.
const RUN_MODULES = ['cli/usage.js', 'version.js', 'cli/early-stop.js', 'cli/run.js', 'agent/http.js', 'follower/follower.js', 'wal-source/stream.js'];

if (!process.env.NODE_COMPILE_CACHE || typeof module.enableCompileCache !== 'function') {
  process.stdout.write(`compile cache not filled: ${process.env.NODE_COMPILE_CACHE ? `node ${process.version} has none (Node 22.1+)` : 'NODE_COMPILE_CACHE is not set'}\n`);
} else {
  const dist = new URL('../dist/', import.meta.url);
  for (const m of RUN_MODULES) await import(new URL(m, dist).href);
  createRequire(import.meta.url)('koffi'); // loaded by bin/ and willneed.ts before the first hint
  createRequire(import.meta.url)('pino'); // loaded by log.ts once start-up settled
  createRequire(import.meta.url)('smol-toml'); // loaded by config/load.ts to read a config file
  module.flushCompileCache();
  const dir = module.getCompileCacheDir();
  if (!dir) {
    process.stderr.write(`compile cache not filled: node could not use ${process.env.NODE_COMPILE_CACHE} (see NODE_DEBUG_NATIVE=COMPILE_CACHE)\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`compile cache: ${readdirSync(dir).length} modules in ${dir}\n`);
  }
}
