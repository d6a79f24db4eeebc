// The agent's own memory cgroup: parsed from fixtures of both formats (a
// container's view, where the mount root is the container's own cgroup), and
// read for real from a child cgroup this test creates (v1 or v2, whichever
// has a writable memory controller here; skipped otherwise, e.g. not root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createMemoryCgroup } from './helpers/memory-cgroup.ts';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMountinfo, parseProcCgroup, readMemoryCgroup } from '../src/prefault/memory-cgroup.ts';
import { memoryBudget, sizeWindow, AUTO_ROOM_SHARE, HEADROOM_BYTES, MAX_PAGES_AHEAD_DEFAULT, PROCESS_BYTES, SMALL_HEAP_PROCESS_BYTES } from '../src/prefault/memory-budget.ts';

const MiB = 1024 * 1024;
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'pgpf-cgroup-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test('cgroup v1 fixture: a container whose mount root is its own cgroup; hierarchical limit wins when smaller', (t) => {
  const pod = '/kubepods/burstable/pod1/abc';
  const root = tree({
    'proc/self/cgroup': `12:pids:${pod}\n4:memory:${pod}\n3:cpu,cpuacct:${pod}\n1:name=systemd:${pod}\n0::/\n`,
    'proc/self/mountinfo':
      `100 90 0:30 ${pod} /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n` +
      `101 90 0:31 ${pod} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n`,
    'sys/fs/cgroup/memory/memory.limit_in_bytes': `${256 * MiB}\n`,
    'sys/fs/cgroup/memory/memory.usage_in_bytes': `${150 * MiB}\n`,
    'sys/fs/cgroup/memory/memory.stat': `cache ${90 * MiB}\nrss ${60 * MiB}\nhierarchical_memory_limit ${200 * MiB}\ntotal_cache ${100 * MiB}\n`,
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const cg = readMemoryCgroup(root);
  assert.deepEqual(cg, { version: 1, dir: join(root, 'sys/fs/cgroup/memory'), limitBytes: 200 * MiB, usageBytes: 150 * MiB, pageCacheBytes: 100 * MiB });
  const budget = memoryBudget(cg, 8000 * MiB);
  // The process holds 50 MiB now: the larger of that and the estimate for the
  // small heap it gets at 200 MiB (memory-heap.ts) counts.
  assert.equal(budget.pageCacheRoomBytes, 200 * MiB - Math.max(50 * MiB, SMALL_HEAP_PROCESS_BYTES) - HEADROOM_BYTES, 'room = limit - what the process holds itself - headroom');
  assert.equal(memoryBudget({ ...cg!, usageBytes: 100 * MiB }, null).pageCacheRoomBytes, 200 * MiB - SMALL_HEAP_PROCESS_BYTES - HEADROOM_BYTES, 'the estimate, while the process holds less');
  assert.equal(memoryBudget({ ...cg!, usageBytes: 300 * MiB, pageCacheBytes: 150 * MiB, limitBytes: 400 * MiB }, null).pageCacheRoomBytes, 400 * MiB - 150 * MiB - HEADROOM_BYTES, 'or what it holds, when more');
  assert.equal(memoryBudget({ ...cg!, limitBytes: 1024 * MiB }, null).pageCacheRoomBytes, 1024 * MiB - PROCESS_BYTES - HEADROOM_BYTES, "a large limit keeps V8's default heap: more for the process");
  const auto = sizeWindow('auto', budget, 8192);
  assert.equal(auto.maxPagesAhead, Math.floor((134 * MiB) / 8192 / AUTO_ROOM_SHARE), "an eighth of the room");
  assert.equal(auto.warning, null);
  const tooBig = sizeWindow(16384, budget, 8192);
  assert.equal(tooBig.maxPagesAhead, 16384, 'an explicit window is kept');
  assert.match(tooBig.warning ?? '', /max_pages_ahead = 16384 keeps up to 128 MiB .* memory limit \(cgroup v1, 200 MiB\) leaves about 134 MiB .*"auto"/);
});

test('cgroup v1: "no limit" (PAGE_COUNTER_MAX) reads as none; the window falls back to the machine', (t) => {
  const root = tree({
    'proc/self/cgroup': '4:memory:/\n',
    'proc/self/mountinfo': '101 90 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n',
    'sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
    'sys/fs/cgroup/memory/memory.usage_in_bytes': `${1000 * MiB}\n`,
    'sys/fs/cgroup/memory/memory.stat': `cache ${500 * MiB}\n`,
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const cg = readMemoryCgroup(root);
  assert.equal(cg?.limitBytes, null);
  assert.equal(cg?.pageCacheBytes, 500 * MiB, 'cache when total_cache is absent');
  const budget = memoryBudget(cg, 4000 * MiB);
  assert.equal(budget.source, 'machine');
  assert.equal(sizeWindow('auto', budget, 8192).maxPagesAhead, MAX_PAGES_AHEAD_DEFAULT);
});

test('cgroup v2 fixture: memory.max along the path (smallest wins), "max" is none, file is the page cache', (t) => {
  const root = tree({
    'proc/self/cgroup': '0::/system.slice/db.service/sidecar\n',
    'proc/self/mountinfo': '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n',
    'sys/fs/cgroup/system.slice/memory.max': 'max\n',
    'sys/fs/cgroup/system.slice/db.service/memory.max': `${64 * MiB}\n`,
    'sys/fs/cgroup/system.slice/db.service/sidecar/memory.max': 'max\n',
    'sys/fs/cgroup/system.slice/db.service/sidecar/memory.current': `${60 * MiB}\n`,
    'sys/fs/cgroup/system.slice/db.service/sidecar/memory.stat': `anon ${50 * MiB}\nfile ${8 * MiB}\nkernel 100\n`,
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const cg = readMemoryCgroup(root);
  assert.deepEqual(cg, { version: 2, dir: join(root, 'sys/fs/cgroup/system.slice/db.service/sidecar'), limitBytes: 64 * MiB, usageBytes: 60 * MiB, pageCacheBytes: 8 * MiB });
  // 64 MiB holds the process (small heap) and little more: the window's floor.
  const w = sizeWindow('auto', memoryBudget(cg, null), 8192);
  assert.equal(w.maxPagesAhead, 256);
  assert.match(w.warning ?? '', /memory limit \(cgroup v2, 64 MiB\) leaves almost no room .* about 64 MiB .* at least 96 MiB/);
});

test('cgroup parsing: hybrid systems keep memory in v1; a v2 cgroup without the memory controller is none', (t) => {
  assert.deepEqual(parseProcCgroup('4:memory:/a\n0::/b\n'), { v1: '/a', v2: '/b' });
  assert.deepEqual(parseProcCgroup('0::/only\n'), { v1: null, v2: '/only' });
  const m = parseMountinfo('35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n42 1 0:1 / /mnt/with\\040space rw - cgroup cgroup rw,memory\n');
  assert.deepEqual(m.v1, { root: '/', mountPoint: '/sys/fs/cgroup/memory' });
  assert.deepEqual(m.v2, { root: '/', mountPoint: '/sys/fs/cgroup/unified' });
  assert.equal(parseMountinfo('1 1 0:1 / /mnt/with\\040space rw - cgroup cgroup rw,memory\n').v1?.mountPoint, '/mnt/with space');
  const root = tree({
    'proc/self/cgroup': '0::/x\n',
    'proc/self/mountinfo': '30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n',
    'sys/fs/cgroup/x/cgroup.procs': '',
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  assert.equal(readMemoryCgroup(root), null);
  assert.equal(readMemoryCgroup(join(root, 'nothing-here')), null);
});

test('a real child cgroup: a process moved into it reads its limit and the page cache it charged', async (t) => {
  const cg = createMemoryCgroup('pgpf-test', 200 * MiB);
  if (cg === null) {
    t.skip('no writable memory cgroup controller here (needs root and cgroup v1 memory or v2 with memory delegated)');
    return;
  }
  t.after(() => cg.remove());
  const dir = cg.dir;
  const scratch = mkdtempSync(join(tmpdir(), 'pgpf-cgroup-file-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  // The child joins the cgroup, writes and reads 8 MiB (charged to it), then reports what it sees.
  const script = `
    import { writeFileSync, readFileSync } from 'node:fs';
    import { readMemoryCgroup } from ${JSON.stringify(join(repoRoot, 'src/prefault/memory-cgroup.ts'))};
    const before = readMemoryCgroup();
    writeFileSync(${JSON.stringify(join(scratch, 'f'))}, Buffer.alloc(8 * 1048576, 7));
    readFileSync(${JSON.stringify(join(scratch, 'f'))});
    console.log(JSON.stringify({ before, after: readMemoryCgroup() }));
  `;
  const r = spawnSync('sh', ['-c', `echo $$ > ${cg.procs} && exec "$0" --import tsx --input-type=module -e "$1"`, process.execPath, script], {
    encoding: 'utf8', cwd: repoRoot, timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const { before, after } = JSON.parse(r.stdout) as { before: { dir: string; limitBytes: number; usageBytes: number; pageCacheBytes: number }; after: typeof before };
  assert.equal(before.dir, dir);
  assert.equal(before.limitBytes, 200 * MiB);
  assert.ok(before.usageBytes > 10 * MiB && before.usageBytes < 200 * MiB, `usage ${before.usageBytes}`);
  assert.ok(after.pageCacheBytes - before.pageCacheBytes >= 7 * MiB, `page cache grew by ${after.pageCacheBytes - before.pageCacheBytes} bytes`);
});
