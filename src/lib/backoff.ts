export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** 0..1: the delay is drawn from [d * (1 - jitter), d]; spreads reconnects after a mass disconnect. */
  jitter?: number;
}

/** Capped exponential backoff: attempt 0 waits initialMs, each further attempt doubles, never above maxMs. */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  const jitter = policy.jitter ?? 0;
  return Math.round(exp * (1 - jitter * random()));
}

/** Resolves after ms, or early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
