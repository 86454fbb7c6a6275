import { Command } from 'commander';
import { collectStatus } from '../lib/checks/status.js';
import { formatBytes, formatDuration, printJson, println, stateColor, table, dim } from './output.js';
import { runningConfig } from './running-config.js';

export function statusCommand(): Command {
  return new Command('status')
    .description('one row per process: name, pid, state, uptime, restarts, cpu, rss, port')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      const report = await collectStatus(runningConfig().config);
      if (opts.json) return printJson(report);
      println(table(
        ['NAME', 'KIND', 'STATE', 'PID', 'UPTIME', 'RESTARTS', 'CPU', 'RSS', 'PORT', 'HEARTBEAT'],
        report.processes.map((p) => [
          p.name, p.kind, stateColor(p.state), String(p.pid ?? '-'), formatDuration(p.uptimeSeconds), String(p.restarts),
          p.cpuPercent === null ? '-' : `${p.cpuPercent}%`, formatBytes(p.rssBytes), String(p.port ?? '-'),
          p.kind !== 'daemon' ? '' : p.heartbeatAgeSeconds === null ? (p.state === 'running' ? 'missing' : '-') : `${p.heartbeatAgeSeconds}s ago`,
        ]),
      ));
      for (const p of report.processes) if (p.detail && p.state !== 'external') println(dim(`${p.name}: ${p.detail}`));
      if (report.brainLeader !== null) println(dim(`brain leader: ${report.brainLeader.brainId} (fence ${report.brainLeader.fence})`));
      const copiers = (report.leases ?? []).filter((l) => l.name.startsWith('replication:'));
      if (copiers.length > 0) println(dim(`replication leases: ${copiers.map((l) => `${l.name.slice('replication:'.length)} ${l.holderId}`).join(', ')}`));
    });
}
