// Start-up time of the compiled agent as the image runs it (node
// dist/cli/main.js run): process start to its first log line, next to a bare
// `node -e`, and what importing each stage's module costs in a fresh process.
// With --first-hint, also the time to the first prefault hint against a
// primary killed after a burst (PostgreSQL not started: the agent prefaults
// its crash recovery from pg_control and pg_wal, issue #15), as the agent
// reports it (ms since its process started) and as seen from outside (the log
// line is written once start-up settled: info lines wait for pino, which loads
// after the recovery's first hints; the reported figure is the one to read).
// Run: npm run build && node --import tsx bench/startup.ts [runs] [--first-hint [--pg N]
//        [--agent-node PATH] [--agent-node-args "FLAGS"] [--compile-cache]]
// --agent-node runs the agent on another node binary (the image's Node 26);
// --compile-cache alternates runs without and with Node's module compile
// cache (NODE_COMPILE_CACHE, Node 22.1+), filled first by one agent that
// exits normally, as the image's build fills it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MODULES = [
  'cli/run.js',
  'agent/agent.js',
  'metrics/registry.js',
  'follower/follower.js',
  'replication/index.js',
  'follower/recovery-progress.js',
  'wal/decoder.js',
  'prefault/willneed.js',
  'log.js',
];

/** ms from spawn to the first byte on stdout or stderr; the child is then stopped. */
function firstOutput(args: string[]): Promise<number> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
    let done = false;
    const on = (): void => {
      if (done) return;
      done = true;
      res(performance.now() - t0);
      child.kill('SIGKILL');
    };
    child.stdout.once('data', on);
    child.stderr.once('data', on);
    child.once('error', rej);
    setTimeout(() => {
      if (!done) {
        child.kill('SIGKILL');
        rej(new Error(`no output within 10 s from node ${args.join(' ')}`));
      }
    }, 10_000);
  });
}

/** ms to import one module, measured inside a fresh node. */
function importCost(path: string): Promise<number> {
  const script = `const t = performance.now(); await import(${JSON.stringify(path)}); process.stdout.write(String(performance.now() - t));`;
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], cwd: repoRoot });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? res(Number(out)) : rej(new Error(`importing ${path} failed (${code})`))));
  });
}

interface AgentNode {
  /** The node binary. */
  path: string;
  /** Flags before the script. */
  args: string[];
  env: Record<string, string>;
}

/**
 * Spawn the compiled agent on a crashed PGDATA; resolve at its "first prefault
 * hint issued" log line. stop: end it with SIGTERM (a normal exit, which writes
 * the compile cache) instead of SIGKILL.
 */
function firstHint(pgdata: string, node: AgentNode, stop: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<{ outsideMs: number; reportedMs: number }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const args = [...node.args, join(repoRoot, 'dist', 'cli', 'main.js'), 'run', '-D', pgdata, '-H', pgdata, '-p', '1', '-U', 'postgres', '--metrics-listen', '127.0.0.1:0', '--log-level', 'info'];
    const child = spawn(node.path, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot, env: { ...process.env, ...node.env } });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`no first hint within 10 s:\n${out.slice(-2000)}`));
    }, 10_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"sinceProcessStartMs":(\d+)[^\n]*first prefault hint issued/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      const result = { outsideMs: performance.now() - t0, reportedMs: Number(m[1]) };
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      child.once('exit', () => res(result));
      child.kill(stop);
    });
  });
}

async function crashedFirstHint(runs: number, version: number, node: AgentNode, compileCache: boolean): Promise<void> {
  const { withPrimary } = await import('../src/embedded/index.ts');
  await withPrimary(version, { name: 'startup-bench', primaryConf: { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' } }, async ({ primary }) => {
    await primary.exec(`create table c (id int primary key, pad text); insert into c select g, repeat('p', 300) from generate_series(1, 100000) g; checkpoint`);
    await primary.exec(`update c set pad = 'q' where id % 3 = 0`);
    await primary.stop('immediate');
    // What a SIGKILLed postmaster (a pod kill) leaves behind: postmaster.pid naming a dead PID, "ready".
    writeFileSync(join(primary.dataDir, 'postmaster.pid'), `2147483646\n${primary.dataDir}\n${Math.floor(Date.now() / 1000)}\n${primary.port}\n${primary.socketDir}\n*\n  0 0\nready   \n`);
    const how = `node ${await nodeVersion(node.path)}${node.args.length ? ` ${node.args.join(' ')}` : ''}`;
    console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; ${runs} runs; ${how}`);
    if (!compileCache) {
      const r = await firstHints(primary.dataDir, node, runs);
      console.log(`PG ${version} crashed primary, first prefault hint: spawn to log line (written once settled) ${range(r.outside)}; reported since process start ${range(r.reported)}`);
      return;
    }
    const cacheDir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-compile-cache-'));
    try {
      const cached: AgentNode = { ...node, env: { ...node.env, NODE_COMPILE_CACHE: cacheDir } };
      await firstHint(primary.dataDir, cached, 'SIGTERM'); // fills the cache as it exits
      const files = readdirSync(cacheDir, { recursive: true }).length;
      const without = { outside: [] as number[], reported: [] as number[] };
      const withCache = { outside: [] as number[], reported: [] as number[] };
      for (let i = 0; i < runs; i++) {
        for (const [agent, into] of [[node, without], [cached, withCache]] as const) {
          const r = await firstHint(primary.dataDir, agent);
          into.outside.push(r.outsideMs);
          into.reported.push(r.reportedMs);
        }
      }
      console.log(`PG ${version} crashed primary, first prefault hint, runs alternated (compile cache: ${files} entries in ${cacheDir}):`);
      console.log(`  without compile cache: spawn to log line (written once settled) ${range(without.outside)}; reported since process start ${range(without.reported)}`);
      console.log(`  with compile cache:    spawn to log line (written once settled) ${range(withCache.outside)}; reported since process start ${range(withCache.reported)}`);
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });
}

async function firstHints(pgdata: string, node: AgentNode, runs: number): Promise<{ outside: number[]; reported: number[] }> {
  const outside: number[] = [];
  const reported: number[] = [];
  for (let i = 0; i < runs; i++) {
    // A profiled agent must exit normally to write its profile.
    const r = await firstHint(pgdata, node, node.args.some((a) => a.startsWith('--cpu-prof')) ? 'SIGTERM' : 'SIGKILL');
    outside.push(r.outsideMs);
    reported.push(r.reportedMs);
  }
  return { outside, reported };
}

function nodeVersion(path: string): Promise<string> {
  return new Promise((res) => {
    const child = spawn(path, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', () => res(out.trim()));
    child.once('error', () => res('?'));
  });
}

/** The value of `--name value`, or undefined. */
function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: number[]): string => `median ${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;

async function main(): Promise<void> {
  const runs = Number(/^\d+$/.test(process.argv[2] ?? '') ? process.argv[2] : 5);
  if (process.argv.includes('--first-hint')) {
    const node: AgentNode = { path: flag('--agent-node') ?? process.execPath, args: (flag('--agent-node-args') ?? '').split(/\s+/).filter(Boolean), env: {} };
    await crashedFirstHint(runs, Number(flag('--pg') ?? 15), node, process.argv.includes('--compile-cache'));
    return;
  }
  const main = join(repoRoot, 'dist', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
  const empty = mkdtempSync(join(tmpdir(), 'pg-prefaulter-startup-'));
  try {
    const agent: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < runs; i++) {
      // A data directory and socket with no PostgreSQL: the agent logs at start and keeps retrying.
      agent.push(await firstOutput([main, 'run', '-D', empty, '-H', empty, '-p', '1', '-U', 'postgres', '--metrics-listen', '127.0.0.1:0', '--log-level', 'info']));
      bare.push(await firstOutput(['-e', 'console.log(1)']));
    }
    console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; ${runs} runs`);
    console.log(`node dist/cli/main.js run, start to first log line: ${range(agent)}`);
    console.log(`node -e, start to first output:                    ${range(bare)}`);
    for (const m of MODULES) {
      const costs: number[] = [];
      for (let i = 0; i < 3; i++) costs.push(await importCost(join(repoRoot, 'dist', m)));
      console.log(`import dist/${m.padEnd(30)} ${range(costs)}`);
    }
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/startup: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
