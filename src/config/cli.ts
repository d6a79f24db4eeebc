// The config part of `pg-prefaulter run`: --help, --check and ConfigError
// reporting, so the run command only has to start the agent.

import { ConfigError } from './errors.ts';
import { configHelp, effectiveConfigToml } from './help.ts';
import { loadConfig, type LoadResult } from './load.ts';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/**
 * Loads the config for the run command. Returns `{ exit }` when the command
 * is finished (help shown: 0, --check: 0 valid / 2 invalid, bad config: 2),
 * else the loaded config to run with. Non-config errors propagate.
 */
export function configForRun(
  argv: string[],
  env: NodeJS.ProcessEnv,
  io: CliIo = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) },
  cwd?: string,
): { exit: number } | LoadResult {
  let loaded: LoadResult;
  try {
    loaded = loadConfig({ argv, env, ...(cwd === undefined ? {} : { cwd }) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`pg-prefaulter run: invalid configuration: ${err.message}\n`);
    return { exit: 2 };
  }
  if (loaded.help) {
    io.stdout(configHelp());
    return { exit: 0 };
  }
  if (loaded.check) {
    io.stdout(`# configuration is valid; config file: ${loaded.configPath ?? '(none)'}\n`);
    io.stdout(effectiveConfigToml(loaded.config));
    return { exit: 0 };
  }
  return loaded;
}
