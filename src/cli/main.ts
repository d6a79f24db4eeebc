// CLI entry: dispatches to one module per command, each loaded on demand so
// `version` and `--help` stay instant.
import { USAGE } from './usage.ts';
import { NAME, VERSION } from '../version.ts';
import { holdStopSignals } from './early-stop.ts';
import { sizeHeapToCgroup } from '../prefault/memory-heap.ts';

type CommandMain = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<CommandMain>> = {
  run: async () => (await import('./run.ts')).default,
  status: async () => (await import('./status.ts')).default,
  decode: async () => (await import('./decode.ts')).default,
  demo: async () => (await import('./demo.ts')).default,
  version: async () => async () => {
    process.stdout.write(`${NAME} ${VERSION} (node ${process.version})\n`);
    return 0;
  },
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
  }
  if (cmd === '--version' || cmd === '-V') return (await commands.version!())([]);
  if (cmd === 'run') {
    holdStopSignals(); // before run.ts and its modules load (early-stop.ts)
    sizeHeapToCgroup(); // before loading grows the young generation (memory-heap.ts)
  }
  const load = commands[cmd];
  if (!load) {
    process.stderr.write(`pg-prefaulter: unknown command "${cmd}"\n\n${USAGE}`);
    return 2;
  }
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`pg-prefaulter: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
