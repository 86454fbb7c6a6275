import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { sleep } from './backoff.js';

/** Read from fd at pos to its current end; returns the new position. */
function drain(fd: number, pos: number, write: (chunk: string) => void): number {
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n <= 0) return pos;
    write(buf.subarray(0, n).toString('utf8'));
    pos += n;
  }
}

/**
 * Print what is appended to a file until the signal aborts. Polling (not fs.watch) because logs
 * rotate by rename (daemons) or copy-and-truncate (servers): the open descriptor is read to its
 * end before switching to the new file, and a truncated file is re-read from the start (noticed
 * when it is shorter than what was read, so a truncated file that regrows past that between two
 * polls is missed, as with tail -F).
 */
export async function followFile(file: string, write: (chunk: string) => void, signal: AbortSignal, intervalMs = 250): Promise<void> {
  let fd = openSync(file, 'r');
  let pos = fstatSync(fd).size;
  try {
    while (!signal.aborted) {
      await sleep(intervalMs, signal);
      if (fstatSync(fd).size < pos) pos = 0; // truncated in place
      pos = drain(fd, pos, write);
      let current;
      try {
        current = statSync(file);
      } catch {
        continue; // between rename and re-create
      }
      if (current.ino !== fstatSync(fd).ino) {
        closeSync(fd);
        fd = openSync(file, 'r');
        pos = drain(fd, 0, write);
      }
    }
  } finally {
    closeSync(fd);
  }
}
