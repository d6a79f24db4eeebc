// Start-up time of the compiled agent as the image runs it (node
// dist/cli/main.js run): process start to its first log line, next to a bare
// `node -e`, and what importing each stage's module costs in a fresh process.
// With --first-hint, also the time to the first prefault hint against a
// primary killed after a burst (PostgreSQL not started: the agent prefaults
// its crash recovery from pg_control and pg_wal, issue #15), as the agent
// reports it (ms since its process started) and as seen from outside.
// Run: npm run build && node --import tsx bench/startup.ts [runs] [--first-hint [--pg N]]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

/** Spawn the compiled agent on a crashed PGDATA; resolve at its "first prefault hint issued" log line. */
function firstHint(pgdata: string): Promise<{ outsideMs: number; reportedMs: number }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const args = [join(repoRoot, 'dist', 'cli', 'main.js'), 'run', '-D', pgdata, '-H', pgdata, '-p', '1', '-U', 'postgres', '--metrics-listen', '127.0.0.1:0', '--log-level', 'info'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
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
      res({ outsideMs: performance.now() - t0, reportedMs: Number(m[1]) });
      child.kill('SIGKILL');
    });
  });
}

async function crashedFirstHint(runs: number, version: number): Promise<void> {
  const { withPrimary } = await import('../src/embedded/index.ts');
  await withPrimary(version, { name: 'startup-bench', primaryConf: { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' } }, async ({ primary }) => {
    await primary.exec(`create table c (id int primary key, pad text); insert into c select g, repeat('p', 300) from generate_series(1, 100000) g; checkpoint`);
    await primary.exec(`update c set pad = 'q' where id % 3 = 0`);
    await primary.stop('immediate');
    // What a SIGKILLed postmaster (a pod kill) leaves behind: postmaster.pid naming a dead PID, "ready".
    writeFileSync(join(primary.dataDir, 'postmaster.pid'), `2147483646\n${primary.dataDir}\n${Math.floor(Date.now() / 1000)}\n${primary.port}\n${primary.socketDir}\n*\n  0 0\nready   \n`);
    const outside: number[] = [];
    const reported: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await firstHint(primary.dataDir);
      outside.push(r.outsideMs);
      reported.push(r.reportedMs);
    }
    console.log(`PG ${version} crashed primary, first prefault hint: spawn to log line ${range(outside)}; reported since process start ${range(reported)}`);
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: number[]): string => `median ${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;

async function main(): Promise<void> {
  const runs = Number(/^\d+$/.test(process.argv[2] ?? '') ? process.argv[2] : 5);
  if (process.argv.includes('--first-hint')) {
    const pg = process.argv.indexOf('--pg');
    await crashedFirstHint(runs, pg > 0 ? Number(process.argv[pg + 1]) : 15);
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
