import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

/** The bearer token every mutating brain API request needs. A secret: never logged, never in --json. */
export function brainTokenFile(home: string): string {
  return join(home, 'brain.token');
}

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{32,}$/;

/** The token in MPRISM_HOME, created (mode 0600) when missing. Idempotent: an existing token is kept. */
export function ensureBrainToken(home: string): string {
  const file = brainTokenFile(home);
  try {
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // An existing file may have been created more open by hand.
  chmodSync(file, 0o600);
  return readBrainToken(home);
}

/** The token, or a ConfigError saying how to get one. */
export function readBrainToken(home: string): string {
  const file = brainTokenFile(home);
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the brain API token (run \`mprism init\`): ${(err as Error).message}`, { cause: err });
  }
  if (!TOKEN_PATTERN.test(text)) throw new ConfigError(`${file}: not a brain API token (expected 32+ characters of A-Z a-z 0-9 _ -)`);
  return text;
}

/** Constant-time comparison of a presented token with the expected one (digests: equal lengths). */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
