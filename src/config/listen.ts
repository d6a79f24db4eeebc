// "host:port" / "[v6addr]:port" / ":port" listen addresses (metrics_listen).

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses a listen address, or returns an error text saying what is allowed. */
export function parseListen(s: string): ListenAddress | string {
  const m = /^(?:\[([0-9a-fA-F:.%a-zA-Z]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    return `invalid listen address ${JSON.stringify(s)}: expected host:port (e.g. "0.0.0.0:9441", "[::]:9441", "127.0.0.1:0"), or "" to disable`;
  }
  const host = m[1] ?? (m[2] || '0.0.0.0');
  return { host, port };
}
