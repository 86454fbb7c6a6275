import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MprismError, UsageError } from './errors.js';
import { PACKAGE_ROOT } from './paths.js';

export const COMPLETION_SHELLS = ['bash', 'zsh', 'fish'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

export function isCompletionShell(value: string): value is CompletionShell {
  return (COMPLETION_SHELLS as readonly string[]).includes(value);
}

/** The completion script for `shell`, shipped in PACKAGE_ROOT/completions. */
export function completionScript(shell: CompletionShell): string {
  // The type does not protect callers that pass through user input unchecked.
  if (!isCompletionShell(shell)) {
    throw new UsageError(`unknown shell "${String(shell)}": use one of ${COMPLETION_SHELLS.join(', ')}`);
  }
  const file = join(PACKAGE_ROOT, 'completions', `mprism.${shell}`);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new MprismError(`completion script missing from the installation: ${file}`, { cause: err });
  }
}
