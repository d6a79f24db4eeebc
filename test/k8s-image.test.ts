// The Dockerfile (no Docker engine here: it is parsed) and the commands the
// image and the manifests run: the runtime stage's ENTRYPOINT/CMD and every
// sidecar's command/args/env are run with node against a dist/ built the way
// the image builds it, laid out like /app in the image.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { KEYS } from '../src/config/index.ts';
import { asServerUser, freePort, selectedVersions, sleep, withCluster } from './harness/index.ts';
import {
  containerArgv, execForm, generatedConfigMaps, loadDockerfile, REPO, resolveEnv, runtimeImage, sidecars, type DockerInstruction, type EnvVar,
} from './k8s-helpers.ts';

const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };
// A build whose `run` only printed this once stood in for the real command;
// it must fail the tests, not skip them (issue #19).
const PLACEHOLDER = /not available in this build yet/;

/** The effective configuration `run --check` prints (TOML, comments allowed). */
function effective(stdout: string): Record<string, unknown> {
  return parseToml(stdout) as Record<string, unknown>;
}
const IMAGE_APP = '/app';

/** NODE_LTS_VERSION in .ci/run: the Node.js the suite also runs on, the image's major. */
function ciNodeLtsVersion(): string {
  const m = /^NODE_LTS_VERSION=([0-9]+\.[0-9]+\.[0-9]+)$/m.exec(readFileSync(join(REPO, '.ci', 'run'), 'utf8'));
  assert.ok(m, '.ci/run sets NODE_LTS_VERSION=<x.y.z>');
  return m[1]!;
}

/** FROM images with ARG defaults (declared before the first FROM) substituted. */
function stageImages(instrs: DockerInstruction[]): { image: string; name: string | undefined }[] {
  const args: Record<string, string> = {};
  for (const i of instrs.filter((x) => x.op === 'ARG' && x.stage === -1)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(i.args);
    if (m?.[2] !== undefined) args[m[1]!] = m[2];
  }
  return instrs.filter((i) => i.op === 'FROM').map((i) => {
    const [image, as, name] = i.args.replace(/--platform=\S+\s+/, '').split(/\s+/);
    return {
      image: image!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_w, a: string | undefined, b: string | undefined) => args[a ?? b!] ?? ''),
      name: as?.toUpperCase() === 'AS' ? name : undefined,
    };
  });
}

describe('k8s image: Dockerfile', () => {
  const instrs = loadDockerfile();
  const image = runtimeImage(instrs);
  const last = Math.max(...instrs.map((i) => i.stage));
  const rt = instrs.filter((i) => i.stage === last);

  it('is multi-stage on the Node LTS CI tests, pinned by digest: build with npm run build, runtime with production deps and dist/ only', () => {
    const stages = stageImages(instrs);
    assert.ok(stages.length >= 2, 'multi-stage');
    const lts = ciNodeLtsVersion();
    for (const s of stages) {
      assert.match(s.image, new RegExp(`^node:${lts.split('.')[0]}-[a-z0-9-]+@sha256:[0-9a-f]{64}$`),
        `stage ${s.name ?? '?'} uses node:${lts.split('.')[0]}-* (the major .ci/run tests, NODE_LTS_VERSION=${lts}) pinned by digest`);
    }
    const engines = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    assert.ok(engines.includes(lts.split('.')[0]!), `package.json engines (${engines}) names the tested Node ${lts.split('.')[0]}`);
    const build = instrs.filter((i) => i.op === 'RUN' && /\bnpm run build\b/.test(i.args));
    assert.equal(build.length, 1, 'one stage runs npm run build');
    assert.notEqual(build[0]!.stage, last, 'the build happens outside the runtime stage');
    const prodInstall = instrs.find((i) => i.op === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(i.args));
    assert.ok(prodInstall, 'production dependencies come from npm ci --omit=dev');
    assert.ok(!rt.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args) && !/--omit=dev/.test(i.args)),
      'the runtime stage installs no dev dependencies');
    const buildName = stages[build[0]!.stage]!.name;
    assert.ok(rt.some((i) => i.op === 'COPY' && i.args.includes(`--from=${buildName}`) && /\bdist\b/.test(i.args)),
      'the runtime stage copies dist/ from the build stage');
    assert.ok(!rt.some((i) => i.op === 'COPY' && /(^|\s)(\.\/)?src\b/.test(i.args) && !i.args.includes('--from=')),
      'the runtime stage has no TypeScript sources');
    assert.ok(rt.some((i) => i.op === 'COPY' && /\bpackage\.json\b/.test(i.args)), 'package.json (type: module, version) is in the image');
  });

  it('runs as a numeric non-root user (Spilo\'s postgres 101:103), stops on SIGTERM, has no HEALTHCHECK', () => {
    assert.match(image.user, /^\d+(:\d+)?$/, 'USER is numeric so runAsNonRoot can verify it');
    const [uid, gid] = image.user.split(':').map(Number);
    assert.notEqual(uid, 0);
    assert.equal(uid, 101);
    assert.equal(gid, 103);
    assert.equal(rt.find((i) => i.op === 'STOPSIGNAL')?.args, 'SIGTERM');
    assert.ok(!instrs.some((i) => i.op === 'HEALTHCHECK'), 'no HEALTHCHECK: Kubernetes probes /healthz and /readyz');
  });

  it('sets HOME=/tmp and UV_THREADPOOL_SIZE to the io_concurrency default, and OCI labels', () => {
    assert.equal(image.env.HOME, '/tmp');
    const ioDefault = KEYS.find((k) => k.key === 'io_concurrency')!.default;
    assert.equal(image.env.UV_THREADPOOL_SIZE, String(ioDefault));
    const labels = rt.filter((i) => i.op === 'LABEL').map((i) => i.args).join(' ');
    for (const l of ['title', 'description', 'version', 'licenses', 'source']) {
      assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${l}=`), `LABEL org.opencontainers.image.${l}`);
    }
  });

  it('ENTRYPOINT/CMD (exec form) run dist/cli/main.js', () => {
    assert.deepEqual(image.entrypoint, ['node', `${IMAGE_APP}/dist/cli/main.js`]);
    assert.deepEqual(image.cmd, ['run']);
    assert.equal(image.workdir, IMAGE_APP);
    assert.throws(() => execForm({ op: 'CMD', args: 'node x.js', stage: 0 }), /exec form/);
  });

  it('.dockerignore keeps every file the Dockerfile copies from the context', () => {
    const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '*', 'allow-list: everything excluded first');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    const sources = instrs.filter((i) => i.op === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1)).map((s) => s.replace(/^\.\//, '').replace(/\/$/, ''));
    assert.ok(sources.length >= 4);
    for (const s of sources) assert.ok(allowed.includes(s), `${s} is copied but excluded by .dockerignore`);
    for (const s of sources) assert.ok(existsSync(join(REPO, s)), `${s} exists in the repo`);
  });

  it('the build stage keeps only the compiler devDependencies, each pinned by package-lock.json', () => {
    const run = instrs.find((i) => i.op === 'RUN' && i.args.startsWith('node -e '))!;
    assert.ok(run, 'a RUN node -e rewrites package.json in the build stage');
    const script = /^node -e "((?:[^"\\]|\\.)*)"/.exec(run.args)?.[1];
    assert.ok(script, 'the node -e script is double-quoted');
    const dir = mkdtempSync(join(tmpdir(), 'pgpf-dockerfile-'));
    try {
      copyFileSync(join(REPO, 'package.json'), join(dir, 'package.json'));
      execFileSync(process.execPath, ['-e', script], { cwd: dir });
      const kept = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { devDependencies: Record<string, string>; dependencies: Record<string, string> };
      assert.deepEqual(Object.keys(kept.devDependencies).sort(), ['@types/node', 'typescript']);
      assert.deepEqual(kept.dependencies, (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as typeof kept).dependencies);
      const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
      for (const dep of Object.keys(kept.devDependencies)) assert.ok(lock.packages[`node_modules/${dep}`], `${dep} is in package-lock.json`);
      assert.ok(Object.keys(PKG.devDependencies).some((d) => /^pg1\d$/.test(d)), 'control: the repo has PostgreSQL binary devDependencies to drop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('k8s image: ConfigMap configs', () => {
  for (const [name, files] of generatedConfigMaps()) {
    for (const [key, text] of files) {
      if (!key.endsWith('.toml')) continue;
      it(`ConfigMap ${name} ${key} passes pg-prefaulter run --check unchanged`, () => {
        const dir = mkdtempSync(join(tmpdir(), 'pgpf-cm-'));
        try {
          writeFileSync(join(dir, key), text);
          const r = spawnSync(process.execPath, [join(REPO, 'bin', 'pg-prefaulter.js'), 'run', '--config', join(dir, key), '--check'], {
            cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }, timeout: 30_000,
          });
          const out = `${r.stdout}${r.stderr}`;
          assert.doesNotMatch(out, PLACEHOLDER, 'the build prints a placeholder instead of running: run --check is not wired');
          assert.equal(r.status, 0, out);
          const eff = effective(r.stdout);
          assert.equal(eff.pgdata, '/home/postgres/pgdata/pgroot/data', 'Spilo PGDATA');
          assert.equal(eff.host, '/var/run/postgresql', 'Spilo socket directory');
          assert.equal(eff.metrics_listen, '0.0.0.0:9441', 'the port the probes and PodMonitor use');
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  }
});

describe('k8s image: the commands run', () => {
  // /app as the image has it: package.json, production node_modules, dist/
  // compiled with tsconfig.build.json like `npm run build`.
  let root = '';
  let app = '';
  const instrs = loadDockerfile();
  const image = runtimeImage(instrs);

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'pgpf-image-'));
    app = join(root, 'app');
    mkdirSync(app);
    // The e2e test runs the sidecar as the PostgreSQL server's user, like uid 101 in Spilo.
    chmodSync(root, 0o755);
    copyFileSync(join(REPO, 'package.json'), join(app, 'package.json'));
    // Production dependencies only, like `npm ci --omit=dev` in the image: copied
    // from the repo's install (no network), so dev-only imports would fail here too.
    const prod = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO, encoding: 'utf8' }).stdout
      .split('\n').filter((p) => p.startsWith(join(REPO, 'node_modules') + '/'));
    assert.ok(prod.length > 5, `npm ls listed the production dependencies (${prod.length})`);
    for (const p of prod) cpSync(p, join(app, p.slice(REPO.length + 1)), { recursive: true, verbatimSymlinks: true });
    // tsc still emits when other files have type errors; the typecheck is npm test's job.
    spawnSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--outDir', join(app, 'dist')], { encoding: 'utf8' });
  });
  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Maps an in-container path to the local stand-in. */
  function local(s: string): string {
    return s
      .replace(/^\/app(?=\/|$)/, app)
      .replaceAll('/home/postgres/pgdata', join(root, 'pgdata'))
      .replaceAll('/var/run/postgresql', join(root, 'run'))
      .replaceAll('/etc/pg-prefaulter', join(root, 'etc'));
  }

  function run(argv: string[], env: Record<string, string>): { status: number | null; out: string; stdout: string } {
    const [cmd, ...rest] = argv;
    assert.equal(cmd, 'node', 'the container runs node');
    const r = spawnSync(process.execPath, rest.map(local), {
      cwd: app,
      encoding: 'utf8',
      // In-container paths in the environment too (NODE_COMPILE_CACHE=/app/...).
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, local(v)])) },
      timeout: 30_000,
    });
    return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
  }

  it('the build fills the compile cache the image names, as the runtime user, and the entrypoint runs with it', () => {
    const fill = instrs.filter((i) => i.stage === Math.max(...instrs.map((x) => x.stage)) && i.op === 'RUN' && i.args.includes('fill-compile-cache'));
    assert.equal(fill.length, 1, 'the runtime stage runs bin/fill-compile-cache.js');
    const userAt = instrs.findIndex((i) => i.op === 'USER' && i.args === image.user);
    assert.ok(instrs.indexOf(fill[0]!) > userAt, `it runs after USER ${image.user} (Node keeps the cache per uid)`);
    const cacheDir = image.env.NODE_COMPILE_CACHE;
    assert.ok(cacheDir?.startsWith('/app/'), `NODE_COMPILE_CACHE (${cacheDir}) lies in /app`);
    cpSync(join(REPO, 'bin'), join(app, 'bin'), { recursive: true });
    const r = run(fill[0]!.args.split(/\s+/), image.env);
    assert.equal(r.status, 0, r.out);
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    if (major > 22 || (major === 22 && minor >= 1)) {
      assert.match(r.out, /^compile cache: \d+ modules in /);
      const filled = Number(/(\d+) modules/.exec(r.out)![1]);
      assert.ok(filled > 50, `the cache holds the modules run loads (${filled})`);
      assert.ok(existsSync(local(cacheDir!)), 'in the directory the image names');
    } else {
      assert.match(r.out, /has none \(Node 22\.1\+\)/, 'older Node: nothing to fill, said so');
    }
    const v = run([...image.entrypoint, 'version'], image.env);
    assert.equal(v.status, 0, v.out);
  });

  it('the build produced the ENTRYPOINT script, and ENTRYPOINT + version runs it', () => {
    // This file builds the way `npm run build` does, into the stand-in /app.
    assert.equal((JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.build,
      'tsc -p tsconfig.build.json');
    const script = local(image.entrypoint[1]!);
    assert.ok(existsSync(script), `${script} exists after the build (tsconfig.build.json)`);
    const r = run([...image.entrypoint, 'version'], image.env);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, new RegExp(`^pg-prefaulter ${PKG.version.replace(/\./g, '\\.')} `));
  });

  it('everything `run` imports is node built-in or a production dependency (the image has no devDependencies)', () => {
    const deps = new Set(Object.keys((JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies));
    const entry = local(image.entrypoint[1]!);
    // main.js loads each command on demand; the image runs `run`, so follow that one dynamic import
    // (and every dynamic import below it: run loads the SQL client and prom-client after its first hint).
    const followDynamic = new Set([join(dirname(entry), 'run.js')]);
    const seen = new Set<string>();
    const bare = new Map<string, string>();
    const queue = [entry];
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const src = readFileSync(file, 'utf8');
      const found: { spec: string; dynamic: boolean }[] = [];
      for (const m of src.matchAll(/(?:^|[;\s])(?:import|export)\s[^;'"]*?from\s*(['"])([^'"]+)\1|(?:^|[;\s])import\s*(['"])([^'"]+)\3/gm)) {
        found.push({ spec: (m[2] ?? m[4])!, dynamic: false });
      }
      for (const m of src.matchAll(/import\(\s*(['"])([^'"]+)\1\s*\)/g)) found.push({ spec: m[2]!, dynamic: true });
      // CommonJS packages loaded on demand: createRequire(import.meta.url)('pino'), require('koffi')
      for (const m of src.matchAll(/(?:\brequire|createRequire\([^)]*\))\(\s*(['"])([^'"]+)\1\s*\)/g)) found.push({ spec: m[2]!, dynamic: false });
      for (const { spec, dynamic } of found) {
        if (spec.startsWith('.')) {
          const target = join(dirname(file), spec);
          if (!dynamic || followDynamic.has(target) || file !== entry) queue.push(target);
        } else if (!spec.startsWith('node:')) {
          const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
          if (!dynamic || file !== entry) bare.set(pkg, file);
        }
      }
    }
    assert.ok(seen.size > 10, `followed the run command's modules (${seen.size})`);
    assert.ok(bare.has('postgres') && bare.has('pino'), `found the runtime packages: ${[...bare.keys()].join(', ')}`);
    for (const [pkg, file] of bare) {
      assert.ok(deps.has(pkg), `${file.slice(app.length)} imports ${pkg}, which is not in package.json dependencies (npm ci --omit=dev leaves it out)`);
    }
  });

  it('ENTRYPOINT + CMD is the run command (checked with --check against Spilo paths from env)', () => {
    mkdirSync(join(root, 'pgdata', 'pgroot', 'data'), { recursive: true });
    const r = run([...image.entrypoint, ...image.cmd, '--check'], {
      ...image.env,
      PG_PREFAULTER_PGDATA: local('/home/postgres/pgdata/pgroot/data'),
    });
    assert.doesNotMatch(r.out, PLACEHOLDER, 'the build prints a placeholder instead of running: run --check is not wired');
    assert.equal(r.status, 0, r.out);
    assert.equal(effective(r.stdout).pgdata, join(root, 'pgdata', 'pgroot', 'data'), r.out);
  });

  for (const s of sidecars()) {
    it(`${s.where}: command/args/env pass run --check`, () => {
      // Files from ConfigMaps, at their (local) mount paths.
      for (const [path, text] of s.files) {
        mkdirSync(dirname(local(path)), { recursive: true });
        writeFileSync(local(path), local(text));
      }
      mkdirSync(join(root, 'pgdata', 'pgroot', 'data'), { recursive: true });
      mkdirSync(join(root, 'run'), { recursive: true });
      // Secret and field references get test values; passwords are recognisable.
      const secret = (e: EnvVar): string => (/PASSWORD/.test(e.name) ? `s3cr3t-${e.name}` : `from-${e.name}`);
      const env = resolveEnv(s.env, secret);
      for (const k of Object.keys(env)) env[k] = local(env[k]!);
      const argv = containerArgv(s, image);
      const r = run([...argv, '--check'], { ...image.env, ...env });
      assert.doesNotMatch(r.out, PLACEHOLDER, 'the build prints a placeholder instead of running: run --check is not wired');
      assert.equal(r.status, 0, `${argv.join(' ')}:\n${r.out}`);
      const eff = effective(r.stdout);
      assert.equal(eff.pgdata, join(root, 'pgdata', 'pgroot', 'data'), `Spilo PGDATA reached the config:\n${r.out}`);
      assert.equal(eff.host, join(root, 'run'), `socket dir reached the config:\n${r.out}`);
      assert.ok(!/s3cr3t-/.test(r.out), 'no password is printed');
      const streaming = s.env.some((e) => e.name === 'PG_PREFAULTER_REPLICATION_PASSWORD');
      if (streaming) {
        assert.equal(eff.source, 'stream');
        assert.equal(eff.replication_user, 'from-PG_PREFAULTER_REPLICATION_USER', 'replication user from the secret');
        assert.notEqual(eff.replication_password, '', 'replication password set (redacted)');
      } else {
        assert.equal(eff.source, 'local', 'without replication credentials the sidecar reads the local pg_wal');
        assert.equal(eff.username, 'postgres', '$(POSTGRES_USER) from the operator expanded');
      }
    });
  }

  it('a config error in the mounted file fails the check with exit 2 (control)', () => {
    const s = sidecars().find((x) => x.files.size > 0)!;
    const [path, text] = [...s.files][0]!;
    mkdirSync(dirname(local(path)), { recursive: true });
    writeFileSync(local(path), `${local(text)}\nmax_pages_ahaed = 10\n`);
    const r = run([...containerArgv(s, image), '--check'], { ...image.env });
    assert.doesNotMatch(r.out, PLACEHOLDER, 'the build prints a placeholder instead of running: run --check is not wired');
    assert.equal(r.status, 2, r.out);
    assert.match(r.out, /max_pages_ahaed/);
  });

  for (const spec of sidecars()) {
    it(`${spec.where}: as the server's uid, streams for a real standby, serves its probes and stops on SIGTERM`, async (t) => {
      assert.doesNotMatch(run([...image.entrypoint, ...image.cmd, '--check'], image.env).out, PLACEHOLDER, 'the build prints a placeholder instead of running: run is not wired');
      const versions = selectedVersions();
      const version = versions[versions.length - 1]!;
      const streamsUpstream = spec.env.some((e) => e.name === 'PG_PREFAULTER_REPLICATION_PASSWORD');
      // Run as the server's user (Spilo: postgres 101), unless that user cannot
      // reach node or this directory; then as ourselves, saying so.
      let runAs = asServerUser();
      const probeArgs = ['-e', `require('fs').accessSync(${JSON.stringify(local(image.entrypoint[1]!))})`];
      if (runAs.uid !== undefined && spawnSync(process.execPath, probeArgs, { ...runAs, stdio: 'ignore' }).status !== 0) {
        t.diagnostic(`uid ${runAs.uid} cannot run ${process.execPath} on ${app}; running the sidecar as uid ${process.getuid?.()}`);
        runAs = {};
      }
      await withCluster(version, { name: 'k8s-sidecar' }, async ({ primary, standby }) => {
        // Spilo's paths -> this standby's; everything else exactly as the manifest has it.
        const here = (v: string): string => v
          .replace(/^\/app(?=\/|$)/, app)
          .replaceAll('/home/postgres/pgdata/pgroot/data', standby.dataDir)
          .replaceAll('/var/run/postgresql', standby.socketDir)
          .replaceAll('/etc/pg-prefaulter', join(root, 'etc-e2e'));
        mkdirSync(join(root, 'etc-e2e'), { recursive: true });
        chmodSync(join(root, 'etc-e2e'), 0o755);
        for (const [path, text] of spec.files) writeFileSync(here(path), here(text), { mode: 0o644 });
        const port = await freePort();
        const env = resolveEnv(spec.env, (e) => (e.name.endsWith('_USER') ? 'postgres' : 'unused-password'));
        for (const k of Object.keys(env)) env[k] = here(env[k]!);
        const [, ...argv] = containerArgv(spec, image);
        const proc = spawn(process.execPath, argv.map(here), {
          cwd: app,
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            ...image.env,
            ...env,
            // The two test-only differences: the standby's port and a free metrics port.
            PG_PREFAULTER_PORT: String(standby.port),
            PG_PREFAULTER_METRICS_LISTEN: `127.0.0.1:${port}`,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
          ...runAs,
        });
        let out = '';
        proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
        proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
        const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
        const get = async (path: string): Promise<{ status: number; body: string }> => {
          const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
          return { status: res.status, body: await res.text() };
        };
        const waitFor = async (what: string, pred: () => Promise<boolean>): Promise<void> => {
          const deadline = Date.now() + 30_000;
          for (;;) {
            if (proc.exitCode !== null) assert.fail(`sidecar exited (${proc.exitCode}) waiting for ${what}:\n${out.slice(-3000)}`);
            if (await pred().catch(() => false)) return;
            if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}:\n${out.slice(-3000)}`);
            await sleep(100);
          }
        };
        try {
          // The probes the container declares (a cluster sidecar cannot declare any: the endpoints still serve).
          const fallback = { livenessProbe: '/healthz', readinessProbe: '/readyz' } as const;
          const probe = (kind: 'livenessProbe' | 'readinessProbe'): string =>
            (spec.container[kind] as { httpGet: { path: string } } | undefined)?.httpGet.path ?? fallback[kind];
          await waitFor('readiness probe 200', async () => (await get(probe('readinessProbe'))).status === 200);
          await primary.exec('create table k8s_e2e (id int primary key, v text); insert into k8s_e2e select g, md5(g::text) from generate_series(1, 20000) g;');
          await waitFor('state streaming', async () => /^pg_prefaulter_state\{state="streaming"\} 1$/m.test((await get('/metrics')).body));
          assert.equal((await get(probe('livenessProbe'))).status, 200);
          const metrics = (await get('/metrics')).body;
          assert.match(metrics, /^pg_prefaulter_role\{role="standby"\} 1$/m);
          if (streamsUpstream) {
            assert.match(metrics, /^pg_prefaulter_upstream_connected 1$/m, 'streaming with the credentials from the standby secret env');
            assert.match(metrics, /^pg_prefaulter_wal_source\{source="stream"\} 1$/m);
          } else {
            assert.match(metrics, /^pg_prefaulter_wal_source\{source="local"\} 1$/m, 'the global sidecar reads the local pg_wal');
          }
          // STOPSIGNAL SIGTERM: a clean, prompt exit.
          proc.kill('SIGTERM');
          assert.equal(await exited, 0, out.slice(-3000));
        } finally {
          if (proc.exitCode === null) {
            proc.kill('SIGKILL');
            await exited;
          }
        }
      });
    });
  }
});
