/**
 * Both faces' command lines, in-process (issue #18 item 6): one parser (node:util parseArgs) under
 * each face's rules. The Singer forms are those Meltano and singer-python pass: flags in any order,
 * `--x v` and `--x=v`, -c/-s/-p/-d, --config repeated, a stray --catalog/--state beside
 * --discover. The spawned CLIs prove the exit codes and output (e2e-singer, e2e-bad-input).
 */
import { parseCommand } from '../src/cli/airbyte.js';
import { parseArgs } from '../src/cli/singer.js';
import { ConnectorError } from '../src/errors.js';

function errorOf(parse: () => unknown): string {
  try {
    parse();
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectorError);
    expect((e as ConnectorError).failureType).toBe('config_error');
    return (e as Error).message;
  }
  throw new Error('expected a usage error');
}

describe('tap-circleci arguments', () => {
  const none = { config: [], discover: false, about: false, version: false, help: false };

  test('flags in any order and form; --config repeats in order; other values: the last one wins', () => {
    expect(parseArgs([])).toEqual(none);
    expect(parseArgs(['-c', 'a', '--config', 'b', '--config=c'])).toEqual({ ...none, config: ['a', 'b', 'c'] });
    expect(parseArgs([`--state=s`, '-d', `--config=c`, '-p', 'k'])).toEqual({ ...none, config: ['c'], discover: true, state: 's', properties: 'k' });
    expect(parseArgs(['--config', 'c', '--discover', '--catalog', 'k', '--state', 's'])).toEqual({ ...none, config: ['c'], discover: true, catalog: 'k', state: 's' });
    expect(parseArgs(['--catalog', 'a', '--catalog', 'b']).catalog).toBe('b');
    expect(parseArgs(['--about', '--format', 'json'])).toEqual({ ...none, about: true, format: 'json' });
    expect(parseArgs(['--format=markdown', '--about'])).toEqual({ ...none, about: true, format: 'markdown' });
    expect(parseArgs(['-h']).help).toBe(true);
    expect(parseArgs(['-V']).version).toBe(true);
    // Short forms as singer-python's argparse reads them: attached, with "=", grouped.
    expect(parseArgs(['-cx', '-c=y', '-dp', 'k'])).toEqual({ ...none, config: ['x', 'y'], discover: true, properties: 'k' });
    // "-" is a value (a file named so), not a flag.
    expect(parseArgs(['--config', '-']).config).toEqual(['-']);
  });

  test('--test alone, =schema, or followed by one of its values; anything else after it is not its value', () => {
    expect(parseArgs(['--test']).test).toBe('all');
    expect(parseArgs(['--test=all']).test).toBe('all');
    expect(parseArgs(['--test=schema']).test).toBe('schema');
    expect(parseArgs(['--test', 'schema']).test).toBe('schema');
    expect(parseArgs(['--test', 'record']).test).toBe('all');
    expect(parseArgs(['--test', '--config', 'a'])).toEqual({ ...none, config: ['a'], test: 'all' });
    expect(errorOf(() => parseArgs(['--test=foo']))).toBe('--test takes no value, or =schema (got "foo"). Run tap-circleci --help for the options.');
    expect(errorOf(() => parseArgs(['--test', 'foo']))).toBe('Unexpected argument "foo". Run tap-circleci --help for the options.');
  });

  test.each([
    [['--bogus'], 'Unknown option --bogus.'],
    [['-x'], 'Unknown option -x.'],
    [['--'], 'Unknown option --.'],
    [['stray'], 'Unexpected argument "stray".'],
    [['--config', 'a', 'extra'], 'Unexpected argument "extra".'],
    [['--config'], '--config needs a value.'],
    [['-s'], '-s needs a value.'],
    [['--format'], '--format needs a value.'],
    [['--config', '--discover'], '--config needs a value.'],
    [['--discover=1'], '--discover takes no value.'],
    [['--help=1'], '--help takes no value.'],
    [['--about', '--format', 'xml'], '--format is json or markdown (got "xml").'],
  ])('%j: %s', (argv, message) => {
    expect(errorOf(() => parseArgs(argv))).toBe(`${message} Run tap-circleci --help for the options.`);
  });
});

describe('source-circleci arguments', () => {
  test('each command with its files, in any order and form', () => {
    expect(parseCommand(['spec'])).toEqual({ command: 'spec' });
    expect(parseCommand(['check', '--config', 'c'])).toEqual({ command: 'check', config: 'c' });
    expect(parseCommand(['discover', '--config=c'])).toEqual({ command: 'discover', config: 'c' });
    expect(parseCommand(['read', '--catalog', 'k', '--config', 'c'])).toEqual({ command: 'read', config: 'c', catalog: 'k' });
    expect(parseCommand(['--config', 'c', 'read', '--catalog', 'k', '--state', 's'])).toEqual({ command: 'read', config: 'c', catalog: 'k', state: 's' });
    expect(parseCommand(['read', '--help'])).toEqual({ command: 'help' });
    expect(parseCommand(['-h'])).toEqual({ command: 'help' });
    expect(parseCommand(['--version'])).toEqual({ command: 'version' });
  });

  test.each([
    [[], 'Name a command: spec, check, discover or read.'],
    [['sync', '--config', 'x'], 'Unknown command "sync": the commands are spec, check, discover and read.'],
    [['--config', 'x', 'sync'], 'Unknown command "sync": the commands are spec, check, discover and read.'],
    [['read'], 'Missing required arguments: config, catalog.'],
    [['read', '--config', 'x.json'], 'Missing required argument: catalog.'],
    [['discover'], 'Missing required argument: config.'],
    [['read', '--config', 'x', '--catalog', 'y', '--verbose'], 'Unknown option --verbose.'],
    [['--help-me'], 'Unknown option --help-me.'],
    [['spec', 'extra'], 'Unknown argument: extra.'],
    [['spec', '--config', 'x'], 'spec takes no --config.'],
    [['check', '--config', 'x', '--state', 's'], 'check takes no --state.'],
    [['check', '--config'], '--config needs a value.'],
    [['read', '--config=x', '--catalog'], '--catalog needs a value.'],
  ])('%j: %s', (argv, message) => {
    expect(errorOf(() => parseCommand(argv))).toMatch(new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} Usage: source-circleci spec \\| check --config FILE`));
  });
});
