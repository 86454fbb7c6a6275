import { columnWidths, type DashboardView, type TableView } from './view.js';

function renderTable(view: TableView): string {
  const widths = columnWidths(view);
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [view.title, line(view.headers), ...view.rows.map((r) => line(r.map((c) => c.text)))].join('\n');
}

/** The dashboard as plain text, for when output is not a terminal (pipes, cron, logs). */
export function renderPlain(view: DashboardView): string {
  const parts = [view.title, [view.alerts.headline.text, ...view.alerts.lines.map((l) => `  ${l.text}`)].join('\n')];
  if (view.init !== null) parts.push(view.init.text);
  for (const section of view.sections) parts.push(renderTable(section));
  if (view.errors.length > 0) parts.push(['Errors', ...view.errors].join('\n'));
  return `${parts.join('\n\n')}\n`;
}
