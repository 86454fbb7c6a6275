import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { listPids } from '../process-util.js';

const TCP_LISTEN = '0A';

/**
 * Socket inodes listening on `port` in the text of /proc/net/tcp or /proc/net/tcp6 (columns:
 * sl, local_address as HEXADDR:HEXPORT, rem_address, st, ..., inode as the tenth).
 */
export function parseListeningInodes(procNetTcp: string, port: number): string[] {
  const inodes: string[] = [];
  for (const line of procNetTcp.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10 || cols[3] !== TCP_LISTEN) continue;
    const hexPort = cols[1]!.slice(cols[1]!.lastIndexOf(':') + 1);
    if (Number.parseInt(hexPort, 16) === port && cols[9] !== '0') inodes.push(cols[9]!);
  }
  return inodes;
}

/** Inodes of the TCP sockets (IPv4 and IPv6) listening on `port` on this machine. */
export function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6 on this kernel
    }
    for (const inode of parseListeningInodes(text, port)) inodes.add(inode);
  }
  return inodes;
}

/** Whether one of `pid`'s open descriptors is one of these sockets (false when its fds cannot be read). */
export function holdsSocket(pid: number, inodes: ReadonlySet<string>): boolean {
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1]!)) return true;
  }
  return false;
}

/** The process listening on `port` (the lowest pid when a socket is shared after fork), or null. */
export function listeningPid(port: number): number | null {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return null;
  for (const pid of listPids().sort((a, b) => a - b)) if (holdsSocket(pid, inodes)) return pid;
  return null;
}
