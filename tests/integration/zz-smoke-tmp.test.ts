import { test } from 'vitest';
import { startTestInfra } from '../../tests/helpers/test-infra.js';
import { probeInfra } from '../../src/lib/infra/probe.js';
import { INFRA_NAMES } from '../../src/lib/paths.js';
test('smoke', async () => {
  const t0 = Date.now();
  const infra = await startTestInfra();
  console.log('started in', Date.now() - t0);
  for (const n of INFRA_NAMES) console.log(JSON.stringify(await probeInfra(infra.config, n)));
  const { execSync } = await import('node:child_process');
  console.log(execSync('ss -ltnp | grep -E "nats|clickhouse|redis|postgres"').toString());
  console.log(execSync(`ls -la ${infra.home} ${infra.home}/run ${infra.home}/logs`).toString());
  const t1 = Date.now();
  const { stopLocalServer } = await import("../../src/lib/infra/local-servers.js");
  await Promise.all(INFRA_NAMES.map(async (n) => { const t = Date.now(); await stopLocalServer(infra.config, n, 10000); console.log("stop", n, Date.now() - t); }));
  await infra.stop();
  console.log('stopped in', Date.now() - t1);
});
