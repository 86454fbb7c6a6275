import { setTimeout as sleep } from 'node:timers/promises';
import { render } from 'ink';
import type { Config } from '../lib/config/schema.js';
import { App } from '../lib/tui/dashboard.js';
import { TuiDataStore, liveSources } from '../lib/tui/data.js';
import { renderPlain } from '../lib/tui/plain.js';
import { dashboardView } from '../lib/tui/view.js';

/** Gap between the two samples of a plain snapshot: rates need two counts. */
const PLAIN_SAMPLE_GAP_MS = 1000;

/**
 * Interactive dashboard on a terminal. Without one (stdout piped, or no keyboard to quit with),
 * print a single plain-text snapshot instead and return.
 */
export async function runTui(config: Config): Promise<void> {
  const sources = liveSources(config);
  const store = new TuiDataStore(sources);
  try {
    if (process.stdout.isTTY !== true || process.stdin.isTTY !== true) {
      await store.refresh();
      await sleep(PLAIN_SAMPLE_GAP_MS);
      process.stdout.write(renderPlain(dashboardView(await store.refresh())));
      return;
    }
    const app = render(<App refresh={() => store.refresh()} />, { exitOnCtrlC: true });
    await app.waitUntilExit();
  } finally {
    await sources.close();
  }
}
