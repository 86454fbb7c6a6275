import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Venue } from '../../src/lib/config/schema.js';

/** Real exchange payloads (captures and documentation examples); tests/fixtures/exchanges/README.md says where each came from. */
export const FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'exchanges');

export function fixturePath(venue: Venue, file: string): string {
  return join(FIXTURES_DIR, venue, file);
}

/** The lines of a fixture file exactly as stored, one message each (empty lines dropped). */
export function fixtureLines(venue: Venue, file: string): string[] {
  return readFileSync(fixturePath(venue, file), 'utf8').split('\n').filter((l) => l.trim() !== '');
}
