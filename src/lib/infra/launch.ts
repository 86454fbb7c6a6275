import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawn } from 'node:child_process';

/**
 * Starts a server that must outlive the CLI: its own session (no terminal signals from ours), output
 * appended to logFile, and no handle keeping our event loop alive. Resolves once it has been spawned.
 */
export function spawnDetached(binary: string, args: string[], logFile: string): Promise<number> {
  mkdirSync(dirname(logFile), { recursive: true });
  const out = openSync(logFile, 'a');
  try {
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', out, out] });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => {
        child.unref();
        resolve(child.pid as number);
      });
    });
  } finally {
    closeSync(out);
  }
}

export interface CommandResult {
  code: number;
  output: string;
}

/** Runs a short-lived command to completion in its own session, capturing stdout+stderr. */
export function runToCompletion(binary: string, args: string[], opts: { timeoutMs: number; cwd?: string }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    // detached: servers it forks (pg_ctl -> postmaster) get a session of their own, away from our terminal.
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd, timeout: opts.timeoutMs });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output: output.trim() }));
  });
}
