// `pg-prefaulter run`: the sidecar. Loads config, starts the HTTP endpoint and
// the agent; SIGHUP reloads the config (metrics_listen rebinds), SIGTERM/SIGINT
// stop it and the process exits at once.
import { ConfigError } from '../config/errors.ts';
import { configHelp, effectiveConfigToml } from '../config/help.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { DeferredLogger } from '../log.ts';
import { Agent } from '../agent/agent.ts';
import type { AgentHttp } from '../agent/http.ts';
import { releaseStopSignals } from './early-stop.ts';
import { relaunchWithThreadpool, resolveIoMethod, sizeThreadpool, type ResolvedIoMethod } from '../prefault/index.ts';
import { sizeHeapToCgroup } from '../prefault/memory-heap.ts';
import { setCollectEvery } from '../replication/read-buffers.ts';

const STOP_DEADLINE_MS = 1800;

export default async function runCommand(argv: string[]): Promise<number> {
  let loaded;
  try {
    loaded = loadConfig({ argv, env: process.env });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`pg-prefaulter run: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (loaded.help) {
    process.stdout.write(configHelp());
    return 0;
  }
  const config = loaded.config;
  let io: ResolvedIoMethod;
  try {
    io = resolveIoMethod(config.ioMethod);
  } catch (e) {
    process.stderr.write(`pg-prefaulter run: ${(e as Error).message}\n`);
    return 2;
  }
  if (loaded.check) {
    process.stdout.write(`# configuration is valid${loaded.configPath ? ` (${loaded.configPath})` : ''}; io_method runs as ${io.method}${io.fallbackReason ? ` (${io.fallbackReason})` : ''}\n${effectiveConfigToml(config, loaded.sources)}`);
    return 0;
  }
  // Each pread holds a libuv pool thread: a pool smaller than io_concurrency
  // would cap them, so rerun once with it sized. Hints need no pool.
  if (io.method === 'pread') {
    const pool = sizeThreadpool(config.ioConcurrency);
    if (pool.effective < pool.requested) {
      releaseStopSignals(); // the relaunch forwards them to its child
      const code = await relaunchWithThreadpool(pool);
      if (code !== null) return code;
    }
  }
  const code = await runAgent(config, loaded.configPath, argv);
  // Everything is closed and the log flushed. Whatever else still holds the
  // event loop (a socket the peer has not closed yet, a library's timer) must
  // not keep Kubernetes or systemd waiting: exit now.
  process.exit(code);
}

/** Runs the agent and its HTTP endpoint until SIGTERM/SIGINT; SIGHUP reloads. */
async function runAgent(config: Config, configPath: string | null, argv: string[]): Promise<number> {
  // pino loads once start-up settled (after a recovery's first hints); warnings and worse load it at once.
  const log = new DeferredLogger(config.logLevel);
  // A small memory limit gets a small young generation (a 64 MiB agent was OOM-killed); main.ts applied it already.
  const heap = sizeHeapToCgroup();
  setCollectEvery(heap.collectEveryBytes);
  log.debug({ heap }, 'heap sized to the memory cgroup');
  // The agent starts before the HTTP endpoint and prom-client are loaded: a
  // recovery prefetch gives its first hint within tens of milliseconds (issue #15).
  let observeRead: ((seconds: number) => void) | undefined;
  const agent = new Agent(config, log, { observeReadSeconds: (s) => observeRead?.(s) });
  let http: AgentHttp | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (signal: string) => {
    if (stopping) return;
    log.info({ signal }, 'stopping');
    const deadline = setTimeout(() => {
      log.error('stop took longer than 2 s; exiting anyway');
      process.exit(0);
    }, STOP_DEADLINE_MS);
    deadline.unref();
    stopping = (async () => {
      await agent.stop();
      await http?.close();
      clearTimeout(deadline);
    })();
  };
  // Before the agent starts: PID 1 drops the signals it has no handler for (early-stop.ts).
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  releaseStopSignals();
  const running = agent.start();
  await agent.startupSettled;
  log.start();
  if (!stopping) {
    const { AgentHttp, agentMetrics } = await import('../agent/http.ts');
    const { metrics, options } = agentMetrics();
    observeRead = options.observeReadSeconds;
    try {
      http = await AgentHttp.start(agent, metrics, config.metricsListen);
    } catch (e) {
      log.fatal({ err: { message: (e as Error).message } }, `cannot listen on metrics_listen ${config.metricsListen}`);
      await agent.stop();
      return 1;
    }
    // Stopped while the endpoint started: close it (the stop found none to close).
    if (stopping) await http.close();
    else log.info({ configPath, metrics: http.address, pid: process.pid, ioMethod: agent.ioMethod.method }, 'pg-prefaulter started');
    if (agent.ioMethod.fallbackReason) log.warn(`io_method auto runs as pread: ${agent.ioMethod.fallbackReason}`);
  }
  const onHup = () => {
    try {
      const next = loadConfig({ argv, env: process.env }).config;
      log.level = next.logLevel;
      agent.reload(next);
      if (next.metricsListen !== metricsListen) rebind(next.metricsListen);
    } catch (e) {
      log.error({ err: { message: (e as Error).message } }, 'config reload failed; keeping the running configuration');
    }
  };
  let metricsListen = config.metricsListen;
  const rebind = (listen: string) => {
    if (!http) return;
    const endpoint = http;
    endpoint.listen(listen).then(
      () => {
        metricsListen = listen;
        log.info({ metrics: endpoint.address }, listen ? `metrics_listen now ${endpoint.address}` : 'metrics_listen "": the HTTP endpoint is closed');
      },
      (e: unknown) => log.error({ err: { message: (e as Error).message } }, `metrics_listen ${listen}: cannot listen; still serving on ${endpoint.address ?? '(none)'}`),
    );
  };
  process.on('SIGHUP', onHup);
  await running;
  if (stopping) await stopping;
  // What would still keep the process alive, for whoever wonders why exiting needed process.exit().
  log.info({ activeResources: process.getActiveResourcesInfo() }, 'stopped');
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  return 0;
}
