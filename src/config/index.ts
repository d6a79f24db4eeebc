// Public API of the configuration module.
export { KEYS, SOURCES, SSL_MODES, LOG_LEVELS, CONFIG_ENV, DEFAULT_CONFIG_FILE, ENV_PREFIX, OTHER_COMMAND_ENVS, type Config, type KeyDef, type KeyType } from './schema.ts';
export { ConfigError } from './errors.ts';
export { loadConfig, defaultConfig, type LoadArgs, type LoadResult } from './load.ts';
export { configHelp, sampleToml, effectiveConfigToml, configReferenceMarkdown } from './help.ts';
export { redactedConfig, redactConninfo, REDACTED } from './redact.ts';
export { parseListen, type ListenAddress } from './listen.ts';
export { parseSize, parseDuration, formatSize, formatDuration } from '../units.ts';
export { readSecretFile, resolvePassword, resolveReplicationPassword } from './secrets.ts';
export { lookupPgpass, pgpassPath, type PgpassTarget } from '../pgpass.ts';
