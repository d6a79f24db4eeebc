// The agent's HTTP endpoint: /metrics, /healthz (liveness), /readyz
// (readiness: never depends on PostgreSQL, or k8s would take the database pod
// out of its Service), /status (JSON for `pg-prefaulter status`).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { parseListen } from '../config/listen.ts';
import type { AgentMetrics } from './registry.ts';

export interface HttpOptions {
  /** "host:port"; port 0 picks a free port (see the returned address). */
  listen: string;
  metrics: AgentMetrics;
  /** JSON body of /status. */
  status: () => object | Promise<object>;
  /** /healthz is 200 while this is true (the main loop ticked recently), else 503. */
  health: () => boolean;
  /** /readyz is 200 while this is true; default always (config loaded, loop running once the server is up). */
  ready?: () => boolean;
}

export interface HttpEndpoint {
  /** Bound address as "host:port" ("[::1]:9441" for IPv6). */
  address: string;
  port: number;
  close(): Promise<void>;
}

// Required, not imported: an ES import of node:http makes Node 26 evaluate all
// of its exports, and its WebSocket getters load undici (~30 ms of the event
// loop while a crash recovery still replays; 3 ms this way).
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export async function startHttp(opts: HttpOptions): Promise<HttpEndpoint> {
  const parsed = parseListen(opts.listen);
  if (typeof parsed === 'string') throw new Error(`metrics_listen: ${parsed}`);

  const server = createServer((req, res) => {
    handle(req, res, opts).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `internal error: ${(err as Error).message}\n`);
      else res.destroy();
    });
  });
  // Scrapers keep connections alive; don't let that hold close() up.
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new Error(`cannot listen on ${opts.listen} for metrics: ${err.message}${err.code === 'EADDRINUSE' ? '; choose another metrics_listen port, or "" to disable' : ''}`));
    };
    server.once('error', onError);
    server.listen(parsed.port, parsed.host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    address: `${host}:${addr.port}`,
    port: addr.port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: HttpOptions): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed: use GET\n');
    return;
  }
  const path = (req.url ?? '/').split('?')[0];
  switch (path) {
    case '/metrics': {
      const { contentType, body } = await opts.metrics.scrape();
      send(res, 200, contentType, body);
      return;
    }
    case '/healthz':
      if (opts.health()) send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      else send(res, 503, 'text/plain; charset=utf-8', 'unhealthy: the agent main loop has not run recently\n');
      return;
    case '/readyz':
      if (opts.ready?.() ?? true) send(res, 200, 'text/plain; charset=utf-8', 'ready\n');
      else send(res, 503, 'text/plain; charset=utf-8', 'not ready\n');
      return;
    case '/status': {
      const body = JSON.stringify(await opts.status(), jsonSafe, 2);
      send(res, 200, 'application/json; charset=utf-8', body + '\n');
      return;
    }
    case '/':
      send(res, 200, 'text/plain; charset=utf-8', 'pg-prefaulter: /metrics /healthz /readyz /status\n');
      return;
    default:
      send(res, 404, 'text/plain; charset=utf-8', `not found: ${path}; try /metrics /healthz /readyz /status\n`);
  }
}

/** bigint (LSNs) as decimal strings: JSON.stringify throws on them otherwise. */
function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

function send(res: ServerResponse, code: number, contentType: string, body: string): void {
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
