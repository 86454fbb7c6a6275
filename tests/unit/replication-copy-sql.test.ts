import { describe, expect, it } from 'vitest';
import type { ClickHouseServerConfig } from '../../src/lib/config/schema.js';
import { copySql, remoteAddress } from '../../src/lib/replication/copy.js';
import { tableFor } from '../../src/lib/store/tables.js';

const hot: ClickHouseServerConfig = { url: null, host: '127.0.0.1', httpPort: 8123, tcpPort: 9000, database: 'mprism_hot', user: 'default', password: "p'w", replication: null };
const cold: ClickHouseServerConfig = { ...hot, httpPort: 8124, tcpPort: 9001, database: 'mprism_cold', password: '' };

describe('remoteAddress', () => {
  it('uses host and TCP port, taking the host from an external URL', () => {
    expect(remoteAddress(hot)).toBe('127.0.0.1:9000');
    expect(remoteAddress({ ...hot, url: 'https://user:pw@ch-hot.internal:8443', tcpPort: 9440 })).toBe('ch-hot.internal:9440');
  });
});

describe('copySql', () => {
  it('inserts on the target only the keys it lacks, one row per key, for exactly the window', () => {
    const sql = copySql(hot, cold, tableFor('trade'), { start: 60_000, end: 120_000 });
    const cols = '`venue`, `market_type`, `symbol`, `instrument`, `event_time`, `receive_time`, `trade_id`, `price`, `quantity`, `side`';
    const key = '`event_time`, `venue`, `symbol`, `trade_id`';
    const where = '`event_time` >= 60000 AND `event_time` < 120000';
    expect(sql).toBe(
      [
        `INSERT INTO \`mprism_cold\`.\`trades\` (${cols})`,
        `SELECT ${cols} FROM remote('127.0.0.1:9000', \`mprism_hot\`, \`trades\`, 'default', 'p\\'w')`,
        `WHERE ${where}`,
        `AND (${key}) GLOBAL NOT IN (SELECT ${key} FROM \`mprism_cold\`.\`trades\` WHERE ${where})`,
        `LIMIT 1 BY ${key}`,
      ].join('\n'),
    );
  });
});
