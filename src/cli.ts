import { CommanderError } from 'commander';
import { program } from './commands/program.js';
import { red } from './commands/output.js';
import { EXIT_STATUS, ExitCode, MprismError } from './lib/errors.js';

/** The one error boundary: every failure becomes a message on stderr and an exit code from the contract. */
async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; commander has already printed its usage message
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (err instanceof MprismError) {
      if (err.message) process.stderr.write(`${red(`mprism: ${err.message}`)}\n`);
      return EXIT_STATUS[err.code];
    }
    process.stderr.write(`mprism: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return ExitCode.internal;
  }
}

process.exitCode = await main(process.argv);
