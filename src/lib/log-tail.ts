import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { sleep } from './backoff.js';

/**
 * Print what is appended to a file until the signal aborts. Polling (not fs.watch) because the
 * supervisor rotates logs by rename: when the size shrinks or the inode changes we reopen at 0.
 */
export async function followFile(file: string, write: (chunk: string) => void, signal: AbortSignal, intervalMs = 250): Promise<void> {
  let st = statSync(file);
  let ino = st.ino;
  let pos = st.size;
  while (!signal.aborted) {
    await sleep(intervalMs, signal);
    try {
      st = statSync(file);
    } catch {
      continue; // between rename and re-create
    }
    if (st.ino !== ino || st.size < pos) {
      ino = st.ino;
      pos = 0;
    }
    if (st.size > pos) {
      const fd = openSync(file, 'r');
      try {
        const buf = Buffer.alloc(st.size - pos);
        readSync(fd, buf, 0, buf.length, pos);
        pos = st.size;
        write(buf.toString('utf8'));
      } finally {
        closeSync(fd);
      }
    }
  }
}
