import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../lib/config/load.js';
import { PACKAGE_ROOT } from '../lib/paths.js';
import { alertsCommand } from './alerts.js';
import { backfillCommand } from './backfill.js';
import { cleanCommand } from './clean.js';
import { completionCommand } from './completion.js';
import { diagnoseCommand } from './diagnose.js';
import { healthCommand } from './health.js';
import { initCommand } from './init.js';
import { integrityCommand } from './integrity.js';
import { logsCommand } from './logs.js';
import { repairCommand } from './repair.js';
import { restartCommand } from './restart.js';
import { startCommand } from './start.js';
import { statusCommand } from './status.js';
import { stopCommand } from './stop.js';
import { tasksCommand } from './tasks.js';

const { version } = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

function tuiCommand(): Command {
  return new Command('tui')
    .description('interactive status dashboard (q quits); prints one plain snapshot when stdout is not a terminal')
    .action(async () => {
      // Loaded on demand: Ink and React are not needed by any other command.
      const { runTui } = await import('./tui.js');
      await runTui(loadConfig());
    });
}

// Command files load their services with import() inside the action: the database and bus clients
// take a few hundred ms to load, which `status`, `logs` and `--help` should not pay.
export function program(): Command {
  const p = new Command('mprism')
    .description('run and operate a crypto market-data platform: collector -> NATS JetStream -> ClickHouse hot -> cold')
    .version(version)
    .showHelpAfterError()
    .exitOverride();
  for (const cmd of [
    initCommand(), startCommand(), stopCommand(), restartCommand(), statusCommand(), tuiCommand(), healthCommand(),
    integrityCommand(), repairCommand(), backfillCommand(), diagnoseCommand(), cleanCommand(), logsCommand(), completionCommand(), alertsCommand(), tasksCommand(),
  ]) {
    p.addCommand(cmd.exitOverride());
  }
  return p;
}

