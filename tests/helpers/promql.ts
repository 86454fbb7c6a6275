/** PromQL words that are not metric names: aggregation modifiers, set operators, `bool`, `offset`. */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'inf', 'nan']);

/**
 * The metric names a PromQL expression reads: identifiers outside strings, label matchers and
 * ranges that are neither function calls, keywords, nor the label lists of by/on/... . Enough for
 * the queries mprism ships (no `__name__` matchers, no subqueries).
 */
export function promqlMetricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w:.$])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, word, call] = m;
    if (call !== undefined || KEYWORDS.has(word!.toLowerCase())) continue;
    names.add(word!);
  }
  return [...names].sort();
}

/** A histogram's series (_bucket, _sum, _count) belong to the metric named without the suffix. */
export function baseMetricName(name: string, histograms: ReadonlySet<string>): string {
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m !== null && histograms.has(m[1]!) ? m[1]! : name;
}

/** Metric families in Prometheus text exposition: name -> type, from the `# TYPE` lines. */
export function exposedMetrics(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}
