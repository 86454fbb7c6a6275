import { setMaxListeners } from 'node:events';

/**
 * A signal that aborts with `parent` and may carry up to `maxListeners` abort listeners before Node
 * warns of a leak. For owners whose concurrent waits on one signal have a known bound (one per
 * publish in flight, one per poll loop): the bound is by design, a leak beyond it still warns.
 * `release` detaches it from the parent once the owner is done.
 */
export function boundedSignal(parent: AbortSignal | undefined, maxListeners: number): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  setMaxListeners(maxListeners, controller.signal);
  if (parent === undefined) return { signal: controller.signal, release: () => {} };
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { signal: controller.signal, release: () => {} };
  }
  const onAbort = () => controller.abort(parent.reason);
  parent.addEventListener('abort', onAbort, { once: true });
  return { signal: controller.signal, release: () => parent.removeEventListener('abort', onAbort) };
}
