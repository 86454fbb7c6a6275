import { Box, Text } from 'ink';
import { columnWidths, type Cell, type TableView, type Tone } from './view.js';

const TONE_STYLE: Record<Tone, { color?: string; dimColor?: boolean }> = {
  good: { color: 'green' },
  bad: { color: 'red' },
  warn: { color: 'yellow' },
  dim: { dimColor: true },
  plain: {},
};

export function CellText({ cell }: { cell: Cell }) {
  return (
    <Text {...TONE_STYLE[cell.tone]} wrap="truncate">
      {cell.text}
    </Text>
  );
}

const GAP = 2;

export function Table({ view }: { view: TableView }) {
  const widths = columnWidths(view);
  return (
    <Box flexDirection="column" marginBottom={1}>
      <Text bold underline>
        {view.title}
      </Text>
      <Box>
        {view.headers.map((h, i) => (
          <Box key={h} width={widths[i]! + GAP} flexShrink={0}>
            <Text bold>{h}</Text>
          </Box>
        ))}
      </Box>
      {view.rows.map((row, r) => (
        <Box key={r}>
          {row.map((c, i) => (
            <Box key={i} width={widths[i]! + GAP} flexShrink={i === row.length - 1 ? 1 : 0}>
              <CellText cell={c} />
            </Box>
          ))}
        </Box>
      ))}
    </Box>
  );
}
