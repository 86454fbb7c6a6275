import { errorMessage } from '../lib/errors.js';
import { runNormalizeBench } from './normalize.js';
import { runOutageBench } from './outage.js';
import { runPipelineBench } from './pipeline.js';
import { BenchPlatform } from './platform.js';
import { runStorageBench } from './storage.js';
import { runStorageEncodeBench } from './storage-encode.js';
import { runStorageLatencyBench } from './storage-latency.js';

/**
 * `npm run bench [-- NAME...]`: prints figures and ratios against a baseline of the same run. Speed
 * never fails a bench; a run that lost or duplicated data does (exit status 1).
 */
const BENCHES: Readonly<Record<string, (print: (line: string) => void) => unknown>> = {
  normalize: runNormalizeBench,
  outage: runOutageBench,
  pipeline: runPipelineBench,
  storage: runStorageBench,
  'storage-encode': runStorageEncodeBench,
  'storage-latency': runStorageLatencyBench,
};

/** Run only when named: it kills nats-server for minutes and repairs what that cost. */
const ON_REQUEST = new Set(['outage']);

// Interrupted (Ctrl-C, a timeout): the servers and daemons a bench started are stopped, not left behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`${signal}: stopping the bench's servers and daemons\n`);
    void BenchPlatform.stopAll().finally(() => process.exit(130));
  });
}

const wanted = process.argv.slice(2);
const unknown = wanted.filter((n) => !(n in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`);
  process.exitCode = 2;
} else {
  for (const name of wanted.length > 0 ? wanted : Object.keys(BENCHES).filter((n) => !ON_REQUEST.has(n))) {
    console.log(`== ${name} (node ${process.version})`);
    try {
      await BENCHES[name]?.((line) => console.log(line));
    } catch (err) {
      // e.g. storage without clickhouse-server installed: say so and go on with the others.
      process.stderr.write(`${name}: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    }
  }
}
