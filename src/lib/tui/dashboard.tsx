import { Box, Text, useApp, useInput } from 'ink';
import { useEffect, useRef, useState } from 'react';
import { errorMessage } from '../errors.js';
import type { TuiSnapshot } from './data.js';
import { CellText, Table } from './table.js';
import { dashboardView, type DashboardView } from './view.js';

/** Alert lines shown under the headline; the brain API has the full list. */
const ALERT_LINES_SHOWN = 5;

/** One frame of the dashboard: pure rendering of a view. */
export function Dashboard({ view, footer }: { view: DashboardView; footer?: string }) {
  return (
    <Box flexDirection="column">
      <Text bold color="cyan">
        {view.title}
      </Text>
      <Box marginBottom={1}>
        <CellText cell={view.alerts.headline} />
      </Box>
      {view.alerts.lines.length > 0 && (
        <Box flexDirection="column" marginBottom={1}>
          {view.alerts.lines.slice(0, ALERT_LINES_SHOWN).map((line, i) => (
            <CellText key={i} cell={line} />
          ))}
        </Box>
      )}
      {view.init !== null && (
        <Box marginBottom={1}>
          <CellText cell={view.init} />
        </Box>
      )}
      {view.sections.map((section) => (
        <Table key={section.title} view={section} />
      ))}
      {view.errors.length > 0 && (
        <Box flexDirection="column" marginBottom={1}>
          {view.errors.map((e) => (
            <Text key={e} color="red">
              {e}
            </Text>
          ))}
        </Box>
      )}
      {footer !== undefined && <Text dimColor>{footer}</Text>}
    </Box>
  );
}

export interface AppProps {
  /** Gathers the next snapshot (TuiDataStore.refresh). */
  refresh: () => Promise<TuiSnapshot>;
  intervalMs?: number;
}

/** The live dashboard: refreshes every interval (never overlapping), quits on q or Ctrl-C. */
export function App({ refresh, intervalMs = 1000 }: AppProps) {
  const { exit } = useApp();
  const [snapshot, setSnapshot] = useState<TuiSnapshot | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  // A parent passing a fresh closure each render must not restart the refresh loop.
  const refreshRef = useRef(refresh);
  refreshRef.current = refresh;

  useInput((input) => {
    if (input === 'q') exit();
  });

  useEffect(() => {
    let cancelled = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async () => {
      try {
        const next = await refreshRef.current();
        if (cancelled) return;
        setSnapshot(next);
        setFailure(null);
      } catch (err) {
        if (cancelled) return;
        setFailure(errorMessage(err));
      }
      // Scheduled after the refresh finishes, so a slow server delays frames instead of stacking them.
      timer = setTimeout(() => void tick(), intervalMs);
    };
    void tick();
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, [intervalMs]);

  const footer = `q quit · refresh ${intervalMs / 1000}s${failure === null ? '' : ` · refresh failed: ${failure}`}`;
  if (snapshot === null) {
    return (
      <Box flexDirection="column">
        <Text>mprism: gathering status…</Text>
        <Text dimColor>{footer}</Text>
      </Box>
    );
  }
  return <Dashboard view={dashboardView(snapshot)} footer={footer} />;
}
