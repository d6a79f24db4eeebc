// `pg-prefaulter demo`: an embedded primary and standby, a data set, a write
// load, and the agent prefaulting for the standby, with a live view.
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import postgres from 'postgres';
import { Agent } from '../agent/agent.ts';
import { AgentHttp, agentMetrics } from '../agent/http.ts';
import { parseOptions } from '../args.ts';
import { loadConfig } from '../config/load.ts';
import { createCluster, installedVersions, type Cluster } from '../embedded/index.ts';
import { renderDemoView, type DemoFrame } from './demo-view.ts';

const HELP = `Usage: pg-prefaulter demo [options]

Starts an embedded PostgreSQL primary and streaming standby (from the npm
server packages installed with npm ci), loads a data set, runs a write load
on the primary and runs the agent for the standby, with a live view.
Ctrl-C stops everything and removes what the demo created.

Options:
  --pg VERSION          PostgreSQL major version (default: newest installed)
  --rows N              rows in the demo table (default 200000, about 40 MB)
  --clients N           concurrent writers on the primary (default 4)
  --duration SECONDS    stop by itself after this long (default: until Ctrl-C)
  --metrics-listen ADDR agent HTTP address (default 127.0.0.1:9441; 0 port = any)
  --keep                keep the data directories and logs
  --headless            plain log lines instead of the live screen
  -h, --help            this help
`;

export default async function demoCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseOptions(argv, {
      pg: { type: 'string' },
      rows: { type: 'string' },
      clients: { type: 'string' },
      duration: { type: 'string' },
      'metrics-listen': { type: 'string' },
      keep: { type: 'boolean' },
      headless: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    }));
  } catch (e) {
    process.stderr.write(`pg-prefaulter demo: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const installed = installedVersions();
  const version = values.pg ? Number(values.pg) : installed[installed.length - 1];
  if (!version || !installed.includes(version)) {
    process.stderr.write(
      `pg-prefaulter demo: PostgreSQL ${values.pg ?? ''} server package not installed (have: ${installed.join(', ') || 'none'}); run npm ci in the pg-prefaulter checkout\n`,
    );
    return 2;
  }
  const rows = positiveInt(values.rows ?? '200000', '--rows');
  const clients = positiveInt(values.clients ?? '4', '--clients');
  const duration = values.duration === undefined ? null : positiveInt(values.duration, '--duration');
  if (rows === null || clients === null || duration === undefined) return 2;
  const headless = values.headless || !process.stdout.isTTY;
  const say = (line: string) => process.stdout.write(`${line}\n`);

  say(`starting PostgreSQL ${version} primary and standby ...`);
  const cluster = await createCluster(version, {
    name: 'demo',
    primaryConf: { shared_buffers: '16MB', full_page_writes: 'off', checkpoint_timeout: '30min', max_wal_size: '2GB' },
  });
  let stopRequested = false;
  const onSignal = () => {
    stopRequested = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  if (duration !== null) setTimeout(onSignal, duration * 1000).unref();
  let agent: Agent | null = null;
  let http: AgentHttp | null = null;
  let reachedStreaming = false;
  try {
    await loadData(cluster, rows, headless, say, () => stopRequested);
    const { config } = loadConfig({
      argv: [
        '--pgdata', cluster.standby.dataDir,
        '--host', cluster.standby.socketDir,
        '--port', String(cluster.standby.port),
        '--username', 'postgres',
        '--metrics-listen', values['metrics-listen'] ?? '127.0.0.1:9441',
        '--log-level', 'info',
      ],
      env: {},
    });
    const logFile = join(cluster.base, 'logs', 'agent.log');
    const log = pino({ level: config.logLevel, name: 'pg-prefaulter' }, createWriteStream(logFile));
    const { metrics, options } = agentMetrics();
    agent = new Agent(config, log, options);
    http = await AgentHttp.start(agent, metrics, config.metricsListen);
    void agent.start();
    if (http.address) say(`agent metrics: http://${http.address}/metrics   status: http://${http.address}/status`);
    say(`agent log: ${logFile}`);
    say(`write load: ${clients} clients updating random rows on the primary${duration !== null ? ` for ${duration} s` : '; Ctrl-C to stop'}`);
    const load = writeLoad(cluster, rows, clients, () => stopRequested);
    const started = Date.now();
    let last: DemoFrame | null = null;
    while (!stopRequested) {
      await new Promise((r) => setTimeout(r, 1000));
      const frame: DemoFrame = { at: Date.now(), elapsed: (Date.now() - started) / 1000, status: agent.statusJson(), writes: load.count };
      if (agent.state === 'streaming') reachedStreaming = true;
      const text = renderDemoView(frame, last);
      last = frame;
      if (headless) {
        if (Math.round(frame.elapsed) % 5 === 0) say(text.split('\n')[0]!);
      } else {
        process.stdout.write(`\x1b[H\x1b[2J${text}\n(Ctrl-C to stop)\n`);
      }
    }
    await load.done;
    say(`demo finished: agent ${reachedStreaming ? 'reached' : 'did not reach'} the streaming state; ${load.count} writes`);
  } finally {
    await agent?.stop();
    await http?.close();
    if (values.keep) {
      await cluster.primary.stop('fast');
      await cluster.standby.stop('fast');
      say(`kept: ${cluster.base}`);
    } else {
      await cluster.destroy(false);
    }
  }
  return reachedStreaming ? 0 : 1;
}

function positiveInt(text: string | undefined, flag: string): number | null {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`pg-prefaulter demo: ${flag} must be a positive whole number, got "${text}"\n`);
    return null;
  }
  return n;
}

async function loadData(cluster: Cluster, rows: number, headless: boolean, say: (s: string) => void, stop: () => boolean): Promise<void> {
  const { primary, standby } = cluster;
  await primary.exec(`create table demo_accounts (id int primary key, balance bigint not null, filler text) with (fillfactor = 50)`);
  const batch = 20_000;
  for (let done = 0; done < rows && !stop(); done += batch) {
    const n = Math.min(batch, rows - done);
    await primary.query(
      `insert into demo_accounts select g, 0, repeat('x', 100) from generate_series($1::int, $2::int) g`,
      [done + 1, done + n],
    );
    const pct = Math.round(((done + n) / rows) * 100);
    const bar = `${'#'.repeat(Math.round(pct / 4)).padEnd(25, '.')}`;
    if (headless) {
      if (pct % 25 === 0) say(`loading ${pct}%`);
    } else {
      process.stdout.write(`\rloading [${bar}] ${pct}% `);
    }
  }
  if (!headless) process.stdout.write('\n');
  await primary.exec('checkpoint');
  await standby.waitForReplay(await primary.currentLsn(), 120_000);
}

function writeLoad(cluster: Cluster, rows: number, clients: number, stop: () => boolean): { count: number; done: Promise<void> } {
  const { primary } = cluster;
  const sql = postgres({ host: primary.socketDir, port: primary.port, username: 'postgres', database: 'postgres', max: clients, onnotice: () => {} });
  const state = { count: 0, done: Promise.resolve() };
  const one = async () => {
    while (!stop()) {
      // Random single-row updates: the access pattern that makes a follower's replay wait on reads.
      await sql`update demo_accounts set balance = balance + 1 where id = ${1 + Math.floor(Math.random() * rows)}`;
      state.count++;
    }
  };
  state.done = Promise.all(Array.from({ length: clients }, one)).then(() => sql.end({ timeout: 2 }));
  return state;
}
