import { closeSync, copyFileSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, statSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Append-only log file capped at maxBytes: when a write would pass the cap the file is renamed
 * to .1 (older ones shift to .2 ... .keep, the oldest dropped) and a new file is started.
 * Synchronous on purpose: the supervisor must not lose a dying daemon's last lines.
 */
export class RotatingLog {
  private fd: number;
  private size: number;

  constructor(
    readonly file: string,
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.fd = openSync(file, 'a');
    this.size = fstatSync(this.fd).size;
  }

  write(chunk: string | Buffer): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (this.size > 0 && this.size + buf.length > this.maxBytes) this.rotate();
    writeSync(this.fd, buf);
    this.size += buf.length;
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    shiftRotated(this.file, this.keep);
    renameSync(this.file, `${this.file}.1`);
    this.fd = openSync(this.file, 'a');
    this.size = 0;
  }
}

/** Make room for a new `.1`: drop `.keep`, move `.i` to `.i+1`. */
function shiftRotated(file: string, keep: number): void {
  const oldest = `${file}.${keep}`;
  if (existsSync(oldest)) unlinkSync(oldest);
  for (let i = keep - 1; i >= 1; i--) {
    if (existsSync(`${file}.${i}`)) renameSync(`${file}.${i}`, `${file}.${i + 1}`);
  }
}

/**
 * Rotation for logs written by processes we cannot reopen (local servers and daemons write their
 * own O_APPEND file descriptors, so their output survives the supervisor): copy to `.1` and
 * truncate in place, as logrotate's copytruncate does. Lines written between the copy and the
 * truncate are lost. Returns whether it rotated.
 */
export function copyTruncateIfLarger(file: string, maxBytes: number, keep: number): boolean {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  shiftRotated(file, keep);
  copyFileSync(file, `${file}.1`);
  truncateSync(file, 0);
  return true;
}
