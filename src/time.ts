/** Epoch ms of an API timestamp; a missing or odd one sorts as "now or later", so it is never dropped. */
export const timeOf = (v: unknown): number => {
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
};
