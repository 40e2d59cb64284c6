import { constants } from 'node:os';

/**
 * The signals that stop a sync gracefully: SIGTERM (a platform cancelling: Airbyte, Meltano, a
 * container stop) and SIGINT (Ctrl-C in a terminal, an interrupted `meltano run`). Both get the same
 * treatment: checkpoint what is complete, then die by the signal.
 */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** What a shell reports for a death by `signal`: 128 + its number (143 for SIGTERM, 130 for SIGINT). */
export const exitCodeOf = (signal: StopSignal): number => 128 + constants.signals[signal];

/**
 * Dying by the signal that stopped us. Platforms read how a process ended: Meltano's `config test`
 * (before 3.4.1) passes only if the tap dies *by* SIGTERM, and a shell reports 128 + signal either
 * way. So after our own cleanup the handler is removed and the signal sent again, with its default
 * action. Where the default action is ignored (PID 1 in a container), the exit code says it instead.
 */
export function dieBy(signal: StopSignal): never {
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  process.exit(exitCodeOf(signal));
}
