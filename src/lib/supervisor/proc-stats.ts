import { readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux
const PAGE_SIZE = 4096;

export interface ProcStats {
  cpuPercent: number;
  rssBytes: number;
  uptimeSeconds: number;
}

/** Average CPU since start and resident memory, from /proc; null when the process is gone. */
export function procStats(pid: number): ProcStats | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const startTicks = Number(fields[19]);
    const rssPages = Number(fields[21]);
    const systemUptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    const uptimeSeconds = Math.max(0, systemUptime - startTicks / CLOCK_TICKS);
    const cpuPercent = uptimeSeconds > 0 ? ((utime + stime) / CLOCK_TICKS / uptimeSeconds) * 100 : 0;
    return { cpuPercent: Math.round(cpuPercent * 10) / 10, rssBytes: rssPages * PAGE_SIZE, uptimeSeconds: Math.round(uptimeSeconds) };
  } catch {
    return null;
  }
}
