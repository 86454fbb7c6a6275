import { errorMessage } from './errors.js';

/** What a daemon's GET /health said: its HTTP status and JSON body, or why it did not answer. */
export type DaemonHealthAnswer = { answered: true; status: number; ok: boolean; body: unknown } | { answered: false; error: string };

/**
 * The one client of a daemon's /health (daemons bind loopback). A 503 is an answer (the body says
 * what is degraded), not a failure; a body that is not JSON is kept as text. The error of a request
 * that failed names the cause (ECONNREFUSED, a timeout), which fetch() alone hides.
 */
export async function fetchDaemonHealth(port: number, timeoutMs: number): Promise<DaemonHealthAnswer> {
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const code = (cause as { code?: unknown }).code;
    const why = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : typeof code === 'string' ? code : errorMessage(err);
    return { answered: false, error: `unreachable at 127.0.0.1:${port} (${why})` };
  }
  const text = await res.text().catch(() => '');
  let body: unknown = text;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    // keep the raw text
  }
  return { answered: true, status: res.status, ok: res.ok, body };
}
