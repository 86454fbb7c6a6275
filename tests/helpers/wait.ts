/**
 * Polls `cond` until it holds; throws after `ms`. Tests wait on what happened, not for a fixed
 * time, so a loaded machine makes them slower, never wrong.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 20_000, intervalMs = 10, what: string | (() => string) = ''): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    const label = typeof what === 'function' ? what() : what;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms${label ? ` waiting for ${label}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
