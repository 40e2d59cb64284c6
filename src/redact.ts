/**
 * Secrets registered here are masked in everything the connector prints. The writers call
 * `redact` on every line as the last line of defence; code should not put secrets in
 * messages in the first place.
 */
const secrets = new Set<string>();

export function registerSecret(value: string | undefined): void {
  // Very short values would mask ordinary text; CircleCI tokens are 40 hex characters.
  // Tokens are used trimmed (config.ts): mask what is used, which also covers what was pasted.
  const v = value?.trim();
  if (v && v.length >= 6) secrets.add(v);
}

export function redact(text: string): string {
  for (const s of secrets) {
    if (text.includes(s)) text = text.split(s).join('****');
  }
  return text;
}
