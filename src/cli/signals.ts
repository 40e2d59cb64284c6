/**
 * Dying by the signal that stopped us. Platforms read how a process ended: Meltano's `config test`
 * (before 3.4.1) passes only if the tap dies *by* SIGTERM, and a shell reports 128 + signal either
 * way. So after our own cleanup the handler is removed and the signal sent again, with its default
 * action. Where the default action is ignored (PID 1 in a container), the exit code says it instead.
 */
export function dieBy(signal: NodeJS.Signals, code: number): never {
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  process.exit(code);
}
