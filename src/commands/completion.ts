import { Command } from 'commander';
import { COMPLETION_SHELLS, completionScript, isCompletionShell } from '../lib/completions.js';
import { UsageError } from '../lib/errors.js';

export function completionCommand(): Command {
  return new Command('completion')
    .description('print a shell completion script (e.g. mprism completion bash > /etc/bash_completion.d/mprism)')
    .argument('<shell>', COMPLETION_SHELLS.join('|'))
    .action((shell: string) => {
      if (!isCompletionShell(shell)) throw new UsageError(`unknown shell '${shell}': expected ${COMPLETION_SHELLS.join(', ')}`);
      process.stdout.write(completionScript(shell));
    });
}
