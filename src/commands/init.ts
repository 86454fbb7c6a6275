import { Command } from 'commander';
import { loadConfig } from '../lib/config/load.js';
import { UsageError } from '../lib/errors.js';
import type { BinaryReport, InitReport } from '../lib/platform.js';
import { brainTokenFile as brainTokenPath, ensureBrainToken } from '../lib/brain/token.js';
import { dim, green, printJson, println, progress } from './output.js';

function binaryLine(b: BinaryReport): string {
  const note = b.installed ? ' (installed)' : b.optional && b.path === null ? ' (optional: for --with-prometheus, install with --install)' : '';
  return `${b.name.padEnd(16)} ${b.path ?? '-'}${note}`;
}

function render(r: InitReport): void {
  println(`home ${r.home}${r.homeCreated ? ' (created)' : ''}`);
  if (r.configWritten) println(`wrote default config ${r.configWritten}`);
  for (const b of r.binaries) println(binaryLine(b));
  const p = r.provision;
  if (p.streams.created.length) println(`created streams ${p.streams.created.join(', ')}`);
  if (p.streams.updated.length) println(`updated streams ${p.streams.updated.join(', ')}`);
  for (const c of p.clickhouse) {
    const server = c.replica === undefined ? c.server : `${c.server} replica ${c.replica}`;
    println(`clickhouse ${server} ${c.version}: ${c.database} ${c.created.length ? `created ${c.created.join(', ')}` : `${c.existing.length} tables in place`}`);
    if (c.migrated.length) println(`clickhouse ${server}: migrated ${c.migrated.join(', ')} to the current columns`);
  }
  if (p.postgres.databaseCreated) println('created PostgreSQL database');
  if (p.postgres.created.length) println(`created PostgreSQL tables ${p.postgres.created.join(', ')}`);
  println(r.changed ? green('initialized') : 'already initialized: nothing changed');
}

export function initCommand(): Command {
  return new Command('init')
    .description('find or install server binaries, create MPRISM_HOME, write a default config, create streams, tables and schema')
    .option('--install', 'install missing server binaries with apt-get')
    .option('--yes', 'do not ask before installing')
    .option('--binaries-only', 'only find (and with --install, install) the server binaries; touch nothing else')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { install?: boolean; yes?: boolean; binariesOnly?: boolean; json?: boolean }) => {
      if (opts.install && !opts.yes && !process.stdin.isTTY) throw new UsageError('--install needs --yes when not run interactively');
      if (opts.install && !opts.yes) {
        const { createInterface } = await import('node:readline/promises');
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await rl.question('Install missing servers with apt-get? [y/N] ');
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) throw new UsageError('install declined');
      }
      const config = loadConfig();
      const { ensureBinaries, initPlatform } = await import('../lib/platform.js');
      if (opts.binariesOnly) {
        const binaries = await ensureBinaries(config, { install: opts.install === true, progress });
        if (opts.json) printJson(binaries);
        else for (const b of binaries) println(binaryLine(b));
        return;
      }
      const report = await initPlatform(config, { install: opts.install === true, progress });
      // The brain API's mutations need it; only its path is ever printed.
      ensureBrainToken(config.home);
      const brainTokenFile = brainTokenPath(config.home);
      if (opts.json) printJson({ ...report, brainTokenFile });
      else {
        render(report);
        println(dim(`brain API token: ${brainTokenFile} (mode 0600)`));
      }
    });
}
