/**
 * Secrets registered here are masked in everything the connector prints. The writers call
 * `redact` on every line as the last line of defence; code should not put secrets in
 * messages in the first place.
 */
const secrets = new Set<string>();

export function registerSecret(value: string | undefined): void {
  // Very short values would mask ordinary text; CircleCI tokens are 40 hex characters.
  if (value && value.length >= 6) secrets.add(value);
}

export function redact(text: string): string {
  for (const s of secrets) {
    if (text.includes(s)) text = text.split(s).join('****');
  }
  return text;
}
