// The one command-line parser: every command (run, status, decode, demo)
// declares its flags and gets the occurrences back in order, or an ArgError
// naming the flag that is wrong. Forms: --name value, --name=value, -X value,
// -Xvalue, -X=value; "--" ends the options; "-" alone is an argument.

export interface FlagSpec {
  /** Long form, e.g. "--url". */
  flag: string;
  /** Optional short form, e.g. "-H". */
  short?: string | undefined;
  /** True when the flag takes a value. */
  value: boolean;
}

export interface FlagUse<S extends FlagSpec = FlagSpec> {
  spec: S;
  /** As written on the command line ("-p" or "--port"). */
  given: string;
  /** The value, or null for a flag that takes none. */
  value: string | null;
}

export interface ParsedArgs<S extends FlagSpec = FlagSpec> {
  /** Every flag given, in command-line order (a later one overrides an earlier one). */
  uses: FlagUse<S>[];
  positionals: string[];
}

export class ArgError extends Error {
  constructor(
    /** The flag (or argument) at fault, as written. */
    readonly flag: string,
    readonly kind: 'unknown' | 'value' | 'positional',
    message: string,
  ) {
    super(message);
  }
}

export interface ParseOptions {
  /** Arguments that are not flags are allowed (else an ArgError). */
  positionals?: boolean;
}

export function parseArgs<S extends FlagSpec>(argv: readonly string[], specs: readonly S[], opts: ParseOptions = {}): ParsedArgs<S> {
  const byName = new Map<string, S>();
  for (const s of specs) {
    byName.set(s.flag, s);
    if (s.short !== undefined) byName.set(s.short, s);
  }
  const out: ParsedArgs<S> = { uses: [], positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      addPositionals(out, argv.slice(i + 1), opts);
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      addPositionals(out, [arg], opts);
      continue;
    }
    let name: string;
    let inline: string | null;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg : arg.slice(0, eq);
      inline = eq < 0 ? null : arg.slice(eq + 1);
    } else {
      name = arg.slice(0, 2);
      inline = arg.length > 2 ? arg.slice(arg[2] === '=' ? 3 : 2) : null;
    }
    const spec = byName.get(name);
    if (spec === undefined) throw new ArgError(name, 'unknown', `unknown option "${name}"`);
    if (!spec.value) {
      if (inline !== null) throw new ArgError(name, 'value', `${name} takes no value`);
      out.uses.push({ spec, given: name, value: null });
      continue;
    }
    let value = inline;
    if (value === null) {
      const next = argv[i + 1];
      // A next word that looks like a flag is not taken as the value (negative numbers are).
      if (next === undefined || (next.startsWith('-') && next.length > 1 && !/^-\d/.test(next))) {
        throw new ArgError(name, 'value', `${name} needs a value (write ${name}=VALUE for a value starting with "-")`);
      }
      value = next;
      i++;
    }
    out.uses.push({ spec, given: name, value });
  }
  return out;
}

function addPositionals(out: ParsedArgs<FlagSpec>, args: readonly string[], opts: ParseOptions): void {
  if (args.length === 0) return;
  if (!opts.positionals) throw new ArgError(args[0]!, 'positional', `unexpected argument ${JSON.stringify(args[0])}`);
  out.positionals.push(...args);
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
}

export type OptionValues<O extends Record<string, OptionSpec>> = {
  [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string;
};

/** parseArgs for a command whose flags are named by their long form without "--": the last value of each. */
export function parseOptions<const O extends Record<string, OptionSpec>>(
  argv: readonly string[],
  options: O,
  opts: ParseOptions = {},
): { values: OptionValues<O>; positionals: string[] } {
  const specs = Object.entries(options).map(([name, o]) => ({ flag: `--${name}`, short: o.short === undefined ? undefined : `-${o.short}`, value: o.type === 'string', name }));
  const parsed = parseArgs(argv, specs, opts);
  const values: Record<string, string | boolean> = {};
  for (const u of parsed.uses) values[u.spec.name] = u.value ?? true;
  return { values: values as OptionValues<O>, positionals: parsed.positionals };
}
