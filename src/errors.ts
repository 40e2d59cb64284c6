import { redact } from './redact.js';

/** Every failure a user can cause or suffer is one of these (Airbyte's failure_type, which says whose fault it is). */
export type FailureType = 'config_error' | 'transient_error' | 'system_error';

export class ConnectorError extends Error {
  constructor(
    message: string,
    readonly failureType: FailureType,
    /** Detail for logs (never the token), e.g. the last HTTP status. */
    readonly internal?: string,
  ) {
    // Masked where it is made, so no thrown error carries a registered secret (a quoted config
    // value, a server's echo), printed or not.
    super(redact(message));
    this.name = 'ConnectorError';
  }
}

export const configError = (message: string, internal?: string) => new ConnectorError(message, 'config_error', internal);
export const transientError = (message: string, internal?: string) => new ConnectorError(message, 'transient_error', internal);

/** Any thrown value as a ConnectorError: ours keep their type, anything else is a bug (system_error). */
export function asConnectorError(err: unknown): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const wrapped = new ConnectorError(`Unexpected error: ${e.message}. This is a bug in source-circleci; please report it with the log.`, 'system_error');
  wrapped.stack = e.stack === undefined ? undefined : redact(e.stack);
  return wrapped;
}
