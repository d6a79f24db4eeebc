import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArgError, parseArgs, parseOptions } from '../src/args.ts';

const specs = [
  { flag: '--port', short: '-p', value: true },
  { flag: '--json', value: false },
] as const;

test('parseArgs takes every form of a flag, in order', () => {
  const { uses, positionals } = parseArgs(['--port', '1', '--port=2', '-p3', '-p=4', '-p', '5', '--json', 'x', '-', '--', '--json'], specs, { positionals: true });
  assert.deepEqual(uses.map((u) => [u.given, u.value]), [['--port', '1'], ['--port', '2'], ['-p', '3'], ['-p', '4'], ['-p', '5'], ['--json', null]]);
  assert.deepEqual(positionals, ['x', '-', '--json']);
  // a negative number is a value, not a flag
  assert.equal(parseArgs(['--port', '-1'], specs).uses[0]!.value, '-1');
});

test('parseArgs names the bad flag', () => {
  const fails = (argv: string[], flag: string, kind: string, message: RegExp) =>
    assert.throws(() => parseArgs(argv, specs), (e: unknown) => e instanceof ArgError && e.flag === flag && e.kind === kind && message.test(e.message));
  fails(['--bogus'], '--bogus', 'unknown', /unknown option "--bogus"/);
  fails(['-x'], '-x', 'unknown', /unknown option "-x"/);
  fails(['--port'], '--port', 'value', /--port needs a value/);
  fails(['-p', '--json'], '-p', 'value', /-p needs a value/);
  fails(['--json=1'], '--json', 'value', /--json takes no value/);
  fails(['stray'], 'stray', 'positional', /unexpected argument "stray"/);
});

test('parseOptions gives the last value of each option by name', () => {
  const { values, positionals } = parseOptions(['-H', '/tmp', '--host=/run', '--json', 'p'], {
    host: { type: 'string', short: 'H' },
    json: { type: 'boolean' },
    url: { type: 'string' },
  }, { positionals: true });
  assert.equal(values.host, '/run');
  assert.equal(values.json, true);
  assert.equal(values.url, undefined);
  assert.deepEqual(positionals, ['p']);
});
