#!/usr/bin/env bash
# Runs before `npm test`: compile (e2e tests drive the built CLI) and make sure the server
# binaries the integration tests start are installed (apt-get on a fresh Debian machine).
set -euo pipefail
cd "$(dirname "$0")/.."
npx --no-install tsc -p tsconfig.json
# The tests are type-checked too: vitest only strips their types.
npx --no-install tsc -p tsconfig.test.json
# With a replicated hot, so ZooKeeper (only needed then) is installed too for the replicated-layout test.
MPRISM_CLICKHOUSE_HOT_REPLICATION='{interserverPort: 9009, replicas: [{url: null, host: 127.0.0.1, httpPort: 8125, tcpPort: 9002, interserverPort: 9010}]}' \
  node dist/cli.js init --binaries-only --install --yes
