import { Command } from 'commander';
import { userInfo } from 'node:os';
import type { AlertView } from '../lib/brain/alerts/store.js';
import { dim, printJson, println, red, table, yellow } from './output.js';
import { runningConfig } from './running-config.js';

/** The acknowledging user by default; some containers have no passwd entry for it. */
function currentUser(): string | null {
  try {
    return userInfo().username;
  } catch {
    return null;
  }
}

const when = (iso: string | null) => (iso === null ? '-' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

function severityCell(a: AlertView): string {
  if (a.resolvedAt !== null) return dim(a.severity);
  return a.severity === 'critical' ? red(a.severity) : yellow(a.severity);
}

function render(alerts: AlertView[], all: boolean): void {
  if (alerts.length === 0) {
    println(all ? 'no alerts' : 'no open alerts');
    return;
  }
  const headers = ['ID', 'SEVERITY', 'SOURCE', 'OPENED', ...(all ? ['RESOLVED'] : []), 'ACKED', 'MESSAGE'];
  println(
    table(
      headers,
      alerts.map((a) => [
        String(a.id),
        severityCell(a),
        a.source,
        when(a.createdAt),
        ...(all ? [when(a.resolvedAt)] : []),
        a.ackedAt === null ? '-' : `${when(a.ackedAt)}${a.ackedBy ? ` by ${a.ackedBy}` : ''}`,
        a.message,
      ]),
    ),
  );
}

export function alertsCommand(): Command {
  const cmd = new Command('alerts')
    .description("the brain's alerts: open ones by default (exit 3 when the brain is unreachable)")
    .option('--all', 'resolved alerts too, newest first')
    .option('--json', 'print as JSON: { alerts: [...] }')
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      const { config } = runningConfig();
      const { fetchAlerts } = await import('../lib/brain/alerts/client.js');
      const alerts = await fetchAlerts(config, { all: opts.all === true });
      if (opts.json) printJson({ alerts });
      else render(alerts, opts.all === true);
    });
  cmd.addCommand(
    new Command('ack')
      .description('acknowledge an alert: it stays open until its condition clears, but is not delivered again')
      .argument('<id>', 'alert id (see `mprism alerts`)')
      .option('--by <name>', 'who acknowledges (default: the current user)')
      .option('--json', 'print as JSON: { alert: {...} }')
      .action(async (idText: string, opts: { by?: string; json?: boolean }) => {
        const { config } = runningConfig();
        const { ackAlert, parseAlertId } = await import('../lib/brain/alerts/client.js');
        const id = parseAlertId(idText);
        const alert = await ackAlert(config, id, opts.by ?? currentUser());
        if (opts.json) printJson({ alert });
        else println(`alert ${alert.id} acknowledged${alert.ackedBy ? ` by ${alert.ackedBy}` : ''} at ${when(alert.ackedAt)}: ${alert.source}`);
      })
      .exitOverride(),
  );
  return cmd;
}
