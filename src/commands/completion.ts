import { Command } from 'commander';
import { completionScript } from '../lib/completions.js';
import { UsageError } from '../lib/errors.js';

const SHELLS = ['bash', 'zsh', 'fish'] as const;

export function completionCommand(): Command {
  return new Command('completion')
    .description('print a shell completion script (e.g. mprism completion bash > /etc/bash_completion.d/mprism)')
    .argument('<shell>', SHELLS.join('|'))
    .action((shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`unknown shell '${shell}': expected ${SHELLS.join(', ')}`);
      process.stdout.write(completionScript(shell as (typeof SHELLS)[number]));
    });
}
