import { Command } from 'commander';
import type { DiagnoseReport } from '../lib/checks/diagnose.js';
import { CheckFailed, ConfigError } from '../lib/errors.js';
import { bold, dim, formatBytes, green, printJson, println, red, stateColor, table } from './output.js';
import { runningConfig } from './running-config.js';

export function diagnoseCommand(): Command {
  return new Command('diagnose')
    .description('ports, processes, locks, versions, disk, config and recent log errors, with the next step to take')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      let resolved;
      try {
        resolved = runningConfig();
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        // Same shape as a full report, so --json consumers need no special case.
        const report: DiagnoseReport = {
          ok: false, home: '', configFile: null, node: process.version, processes: [], ports: [], locks: [], infra: [],
          disk: null, recentErrors: [], findings: [`configuration invalid:\n${err.message}`], nextSteps: ['fix the configuration lines above'],
        };
        if (opts.json) printJson(report);
        else println(red(report.findings[0]!));
        throw new CheckFailed();
      }
      const { runDiagnose } = await import('../lib/checks/diagnose.js');
      const r = await runDiagnose(resolved.config, { invalidConfigFile: resolved.invalidFile });
      if (opts.json) printJson(r);
      else {
        println(`${bold('home')} ${r.home}   ${bold('config')} ${r.configFile ?? '(defaults)'}   ${bold('node')} ${r.node}`);
        if (r.disk) println(`${bold('disk')} ${formatBytes(r.disk.freeBytes)} free of ${formatBytes(r.disk.totalBytes)} (${r.disk.freePercent}%)`);
        println();
        println(table(['PROCESS', 'STATE', 'PID', 'DETAIL'], r.processes.map((p) => [p.name, stateColor(p.state), String(p.pid ?? '-'), p.detail ?? ''])));
        println();
        println(table(['INFRA', 'STATE', 'VERSION', 'ADDRESS'], r.infra.map((s) => [s.name, stateColor(s.up ? 'up' : 'down'), s.version ?? '-', s.address])));
        println();
        println(table(['PORT', 'OWNER', 'LISTENING', 'EXPECTED'], r.ports.map((p) => [String(p.port), p.owner, p.listening ? 'yes' : 'no', p.expected ? 'yes' : 'no'])));
        println();
        println(table(['LOCK', 'STATE', 'WHY'], r.locks.map((l) => [l.name, stateColor(l.state === 'live' ? 'running' : l.state), l.reason ?? ''])));
        if (r.recentErrors.length > 0) {
          println();
          println(bold('recent errors'));
          for (const e of r.recentErrors) println(dim(`${e.file}: `) + e.line);
        }
        println();
        for (const f of r.findings) println(red(`! ${f}`));
        if (r.findings.length === 0) println(green('no problems found'));
        println(bold('next steps'));
        for (const s of r.nextSteps) println(`  - ${s}`);
      }
      if (!r.ok) throw new CheckFailed();
    });
}
