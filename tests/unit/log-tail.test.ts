import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { followFile } from '../../src/lib/log-tail.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mprism-tail-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const tick = (ms = 60) => new Promise((r) => setTimeout(r, ms));

describe('followFile', () => {
  it('prints appended lines, across a rename rotation and a truncation, without losing any', async () => {
    const file = join(dir, 'storage.log');
    writeFileSync(file, 'old\n');
    let out = '';
    const ac = new AbortController();
    const done = followFile(file, (c) => (out += c), ac.signal, 20);
    await tick();
    appendFileSync(file, 'a\n');
    await tick();
    // written to the old file just before it is rotated away: must still be printed
    appendFileSync(file, 'b\n');
    renameSync(file, `${file}.1`);
    writeFileSync(file, 'c: a longer line\n');
    await tick();
    truncateSync(file, 0);
    appendFileSync(file, 'd\n');
    await tick();
    ac.abort();
    await done;
    expect(out).toBe('a\nb\nc: a longer line\nd\n');
  });
});
