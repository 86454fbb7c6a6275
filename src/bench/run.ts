import { runNormalizeBench } from './normalize.js';

/** `npm run bench [-- NAME...]`: prints figures and ratios against a baseline of the same run; never pass/fail. */
const BENCHES: Readonly<Record<string, (print: (line: string) => void) => unknown>> = {
  normalize: runNormalizeBench,
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((n) => !(n in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`);
  process.exitCode = 2;
} else {
  for (const name of wanted.length > 0 ? wanted : Object.keys(BENCHES)) {
    console.log(`== ${name} (node ${process.version})`);
    BENCHES[name]?.((line) => console.log(line));
  }
}
