import { readFileSync } from 'node:fs';

/** Files shipped at the package root (spec.json, schemas/), read the same way from src/ and dist/. */
export function readPackageJson<T = unknown>(relPath: string): T {
  return JSON.parse(readFileSync(new URL(`../${relPath}`, import.meta.url), 'utf8')) as T;
}

export const packageVersion = (): string => readPackageJson<{ version: string }>('package.json').version;
