import { parseArgs } from 'node:util';

/**
 * Both faces read their arguments with node:util's parseArgs: `--x v`, `--x=v`, short forms
 * (`-c v`, `-cv`, `-c=v`, grouped `-dc v`), flags in any order. parseArgs splits the words; the rules it cannot
 * state are kept here, each with its own message: a value that is missing or looks like another
 * flag, a value given to a switch, a flag or word the face does not know.
 */
export type Flag =
  | { type: 'string'; short?: string }
  | { type: 'boolean'; short?: string }
  /** A switch that may take one of `choices` as `--x=v` or `--x v` (Singer's `--test[=schema]`). */
  | { type: 'optional'; short?: string; choices: string[]; default: string; hint: string };

export interface Parsed {
  /** Each flag's values in the order given (a switch: 'true'; an optional flag: its value). */
  flags: Map<string, string[]>;
  positionals: string[];
}

/** Splits `argv` by `spec`; `fail(message)` must throw (each face words its own usage error). */
export function parseFlags(argv: string[], spec: Record<string, Flag>, fail: (message: string) => never, opts: { positionals?: boolean } = {}): Parsed {
  const options = Object.fromEntries(
    Object.entries(spec).map(([name, f]) => [name, { type: f.type === 'string' ? 'string' : 'boolean', ...(f.short ? { short: f.short } : {}) }] as const),
  );
  // Not strict: parseArgs would throw its own wording; the tokens let each case have ours.
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  const add = (name: string, value: string) => flags.set(name, [...(flags.get(name) ?? []), value]);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.kind === 'option-terminator') fail('Unknown option --.');
    if (t.kind === 'positional') {
      if (!opts.positionals) fail(`Unexpected argument "${t.value}".`);
      positionals.push(t.value);
      continue;
    }
    if (t.kind !== 'option') continue;
    const f = spec[t.name];
    if (!f) fail(`Unknown option ${t.rawName}.`);
    if (f.type === 'boolean') {
      if (t.value !== undefined) fail(`${t.rawName} takes no value.`);
      add(t.name, 'true');
    } else if (f.type === 'optional') {
      const next = tokens[i + 1];
      // `--test schema`: the next word is the value only if it is one of the choices.
      const value = t.inlineValue ? t.value! : next?.kind === 'positional' && f.choices.includes(next.value) ? (i++, next.value) : f.default;
      if (!f.choices.includes(value)) fail(`${t.rawName} takes no value, or ${f.hint} (got "${value}").`);
      add(t.name, value);
    } else {
      // parseArgs takes the next word whatever it is; a flag there means the value was forgotten.
      if (t.value === undefined || (!t.inlineValue && t.value.startsWith('-') && t.value !== '-')) fail(`${t.rawName} needs a value.`);
      // `-c=file` means `-c file` (as singer-python's argparse reads it), not a file named "=file".
      add(t.name, t.inlineValue && !t.rawName.startsWith('--') && t.value.startsWith('=') ? t.value.slice(1) : t.value);
    }
  }
  return { flags, positionals };
}
