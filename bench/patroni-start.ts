// How long after Patroni starts does PostgreSQL start? In a Patroni or Spilo
// pod the sidecar's container starts with the container that runs Patroni,
// and Patroni starts PostgreSQL only once it has booted and asked the DCS:
// that delay is the sidecar's head start in a pod restart, the figure to give
// `bench:replay --mode crash --restart-gap-ms`. Spilo's entrypoint runs
// before Patroni and adds to it (not measured here: no image).
//
// A pod restart as the kubelet does it: every process of the node (Patroni,
// the postmaster and its children) killed at once with SIGKILL after a write
// burst, then Patroni started again. Timed: Patroni's spawn to a live
// postmaster (postmaster.pid names a running process), and to "ready"
// (postmaster.pid line 8: accepting connections; a replica once consistent).
// Real etcd and Patroni from Debian (test/helpers/patroni.ts), two nodes.
//
//   npm run bench:patroni-start [-- --reps 5]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parsePostmasterPid } from '../src/follower/postmaster-pid.ts';
import { sleep } from '../test/harness/index.ts';
import { PatroniCluster, patroniMissing, pgMajor, type PatroniNode } from '../test/helpers/patroni.ts';
import { alive, waitGone } from '../test/helpers/reaper.ts';
import { processTree } from './replay-agent.ts';
import { median } from './replay-report.ts';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '5' } } });
const reps = Number(values.reps);
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps ${values.reps}: expected a positive integer`);

const missing = patroniMissing();
if (missing) {
  process.stderr.write(`bench:patroni-start needs Patroni: ${missing}\n`);
  process.exit(1);
}

function postmaster(node: PatroniNode): { pid: number; status: string | null } | null {
  try {
    const pm = parsePostmasterPid(readFileSync(join(node.dataDir, 'postmaster.pid'), 'utf8'));
    return pm ? { pid: pm.pid, status: pm.status } : null;
  } catch {
    return null;
  }
}

interface Timing {
  role: string;
  rep: number;
  postmasterMs: number;
  readyMs: number;
}

/** Kill the node's whole process tree at once (a pod kill), start Patroni again, time PostgreSQL's start. */
async function restart(node: PatroniNode, role: string, rep: number): Promise<Timing> {
  // WAL since the last checkpoint, so the start is a crash recovery.
  if (role === 'leader') await node.sql('insert into burst select generate_series(1, 200000)');
  const patroni = node.proc!.pid!;
  const old = postmaster(node)?.pid ?? null;
  // The postmaster may not be Patroni's child (Patroni can start it detached): both trees.
  const pids = [...new Set([...processTree(patroni), ...(old !== null && alive(old) ? processTree(old) : [])])];
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  if (!(await waitGone(pids, 10_000))) throw new Error(`${node.name}: processes ${pids.filter(alive).join(', ')} outlived SIGKILL`);
  const t0 = performance.now();
  node.start();
  let postmasterMs: number | null = null;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const pm = postmaster(node);
    const now = performance.now() - t0;
    if (postmasterMs === null && pm !== null && pm.pid !== old && alive(pm.pid)) postmasterMs = now;
    if (postmasterMs !== null && pm?.status === 'ready' && pm.pid !== old) return { role, rep, postmasterMs, readyMs: now };
    if (Date.now() > deadline) throw new Error(`${node.name}: PostgreSQL not ready 120 s after Patroni's start\n${node.log().slice(-4000)}`);
    await sleep(2);
  }
}

function summary(xs: number[]): string {
  return `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
}

const cluster = await PatroniCluster.start(2);
const timings: Timing[] = [];
try {
  // Patroni's default: a primary that went down is restarted in place, not failed over at once.
  await cluster.patchConfig({ primary_start_timeout: 300 });
  await (await cluster.leader()).node.sql('create table burst (x int)');
  for (let rep = 1; rep <= reps; rep++) {
    for (const role of ['leader', 'replica']) {
      await cluster.waitHealthy(120_000);
      const { node: leader } = await cluster.leader();
      const node = role === 'leader' ? leader : cluster.nodes.find((n) => n !== leader)!;
      const t = await restart(node, role, rep);
      timings.push(t);
      process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${role} (${node.name}) rep ${rep}: PostgreSQL started ${t.postmasterMs.toFixed(0)} ms after Patroni, accepting connections at ${t.readyMs.toFixed(0)} ms\n`);
    }
  }
} finally {
  await cluster.destroy();
}

const version = execFileSync('patroni', ['--version'], { encoding: 'utf8' }).trim();
console.log(`### Patroni pod restart: PostgreSQL's start after Patroni's (${version}, PostgreSQL ${pgMajor()}, ${reps} reps)\n`);
console.log('| node | Patroni spawn to postmaster start, ms: median (min-max) | to accepting connections, ms |');
console.log('|---|---:|---:|');
for (const role of ['leader', 'replica']) {
  const rows = timings.filter((t) => t.role === role);
  console.log(`| ${role} | ${summary(rows.map((t) => t.postmasterMs))} | ${summary(rows.map((t) => t.readyMs))} |`);
}
