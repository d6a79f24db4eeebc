/**
 * A configuration problem. `key` is the offending key (snake_case, or the
 * unknown name as given); `source` says where it came from: "flag --port",
 * "env PG_PREFAULTER_PORT", "env PGPORT", "/etc/pg-prefaulter.toml:port".
 * The CLI prints `message` and exits 2.
 */
export class ConfigError extends Error {
  readonly key: string;
  readonly source: string;

  constructor(key: string, source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'ConfigError';
    this.key = key;
    this.source = source;
  }
}
