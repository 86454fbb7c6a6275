import { execa } from 'execa';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/lib/paths.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built CLI as a user would (`npm test` compiles it first), never throwing on a non-zero exit. */
export async function runCli(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<CliResult> {
  const r = await execa(process.execPath, [join(PACKAGE_ROOT, 'dist', 'cli.js'), ...args], {
    env: { ...env, NO_COLOR: '1' },
    reject: false,
    timeout: timeoutMs,
    stdin: 'ignore',
  });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export async function eventually<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 60_000, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
