/**
 * Hooks on the sync's stop signal. Hundreds of requests and waits listen to one AbortSignal at a
 * time (retry waits are not bounded by the concurrency limit), and Node warns past 10 listeners
 * on one signal; so each signal gets a single listener that wakes every hook, and each hook is
 * removed when its wait or request ends.
 */
const hooks = new WeakMap<AbortSignal, Set<() => void>>();

/** Calls `fn` when `signal` aborts; returns the function that removes the hook. */
export function onStop(signal: AbortSignal | undefined, fn: () => void): () => void {
  if (!signal) return () => undefined;
  let set = hooks.get(signal);
  if (!set) {
    const created = new Set<() => void>();
    hooks.set(signal, created);
    signal.addEventListener('abort', () => {
      for (const hook of [...created]) hook();
      created.clear();
    }, { once: true });
    set = created;
  }
  const own = set;
  own.add(fn);
  return () => void own.delete(fn);
}
