import { describe, expect, it } from 'vitest';
import { program } from '../../src/commands/program.js';
import { COMPLETION_SHELLS, completionScript } from '../../src/lib/completions.js';
import { DAEMON_NAMES, INFRA_NAMES } from '../../src/lib/paths.js';

/** The scripts are hand-written per shell; this keeps them in step with the real commands and flags. */
describe('shell completions', () => {
  const commands = program().commands;

  for (const shell of COMPLETION_SHELLS) {
    it(`${shell}: offers every command, every long option, and every daemon and infra name`, () => {
      const script = completionScript(shell);
      for (const cmd of commands) {
        expect(script, `${shell} lacks command ${cmd.name()}`).toMatch(new RegExp(`\\b${cmd.name()}\\b`));
        for (const opt of cmd.options) {
          const name = opt.long!.replace(/^--/, '');
          expect(script, `${shell} lacks ${cmd.name()} --${name}`).toMatch(new RegExp(`(--|-l |')${name}\\b`));
        }
      }
      for (const name of [...DAEMON_NAMES, ...INFRA_NAMES]) expect(script).toContain(name);
    });

    it(`${shell}: offers no option the CLI does not have`, () => {
      const known = new Set(['help', 'version', ...commands.flatMap((c) => c.options.map((o) => o.long!.replace(/^--/, '')))]);
      const offered = [...completionScript(shell).matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!);
      expect(offered.filter((o) => !known.has(o))).toEqual([]);
    });
  }
});
