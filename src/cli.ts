import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanCommand } from './commands/clean.js';
import { completionCommand } from './commands/completion.js';
import { diagnoseCommand } from './commands/diagnose.js';
import { healthCommand } from './commands/health.js';
import { initCommand } from './commands/init.js';
import { integrityCommand } from './commands/integrity.js';
import { logsCommand } from './commands/logs.js';
import { red } from './commands/output.js';
import { repairCommand } from './commands/repair.js';
import { restartCommand } from './commands/restart.js';
import { startCommand } from './commands/start.js';
import { statusCommand } from './commands/status.js';
import { stopCommand } from './commands/stop.js';
import { loadConfig } from './lib/config/load.js';
import { ExitCode, MprismError } from './lib/errors.js';
import { PACKAGE_ROOT } from './lib/paths.js';

const { version } = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

function tuiCommand(): Command {
  return new Command('tui')
    .description('interactive status dashboard (q quits); prints one plain snapshot when stdout is not a terminal')
    .action(async () => {
      // Loaded on demand: Ink and React are not needed by any other command.
      const { runTui } = await import('./commands/tui.js');
      await runTui(loadConfig());
    });
}

// Command files load their services with import() inside the action: the database and bus clients
// take a few hundred ms to load, which `status`, `logs` and `--help` should not pay.
function program(): Command {
  const p = new Command('mprism')
    .description('run and operate a crypto market-data platform: collector -> NATS JetStream -> ClickHouse hot -> cold')
    .version(version)
    .showHelpAfterError()
    .exitOverride();
  for (const cmd of [
    initCommand(), startCommand(), stopCommand(), restartCommand(), statusCommand(), tuiCommand(), healthCommand(),
    integrityCommand(), repairCommand(), diagnoseCommand(), cleanCommand(), logsCommand(), completionCommand(),
  ]) {
    p.addCommand(cmd.exitOverride());
  }
  return p;
}

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
      return err.exitCode;
    }
    process.stderr.write(`mprism: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return ExitCode.internal;
  }
}

process.exitCode = await main(process.argv);
