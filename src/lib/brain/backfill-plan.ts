import { DATA_TYPES, DURATION_PATTERN, VENUES, type Config, type DataType, type Venue } from '../config/schema.js';
import { MprismError } from '../errors.js';
import { configuredStreams } from '../exchanges/registry.js';
import type { HistoryDataType } from '../exchanges/types.js';

/*
 * History initialization, decided without I/O: which stages, which items (venue x instrument x
 * type), which range each item still has to fetch, and how a saved cursor continues. The runner
 * (history-init.ts) only fetches, publishes and saves what these functions say.
 */

/** Stages in the order they run; each has its own concurrency (config.brain.init.concurrency). */
export const INIT_STAGES = ['funding_rate', 'open_interest', 'lsr', 'volatility_index', 'trade'] as const;
export type InitStage = (typeof INIT_STAGES)[number];

export const STAGE_TYPES: { readonly [S in InitStage]: readonly HistoryDataType[] } = {
  funding_rate: ['funding_rate'],
  open_interest: ['open_interest'],
  lsr: ['lsr_top_position', 'lsr_all_account'],
  volatility_index: ['volatility_index'],
  trade: ['trade'],
};

const HISTORY_TYPES: readonly HistoryDataType[] = INIT_STAGES.flatMap((s) => STAGE_TYPES[s]);

export function isHistoryDataType(t: string): t is HistoryDataType {
  return (HISTORY_TYPES as readonly string[]).includes(t);
}

/** Progress keys: one per item, `init:<type>:<venue>:<instrument>`, shared by the brain and the CLI. */
export const ITEM_KEY_PREFIX = 'init:';
/** Whether an initialization over the whole configured scope has finished (every item done or left). */
export const INIT_RUN_KEY = 'init-run';

export function itemKey(dataType: HistoryDataType, venue: Venue, instrument: string): string {
  return `${ITEM_KEY_PREFIX}${dataType}:${venue}:${instrument}`;
}

/** A bad parameter (a task's params, a CLI flag): `param` names it, and the message starts with it. */
export class ParamError extends MprismError {
  override readonly code = 'usage';
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(`${param}: ${message}`);
  }
}

/** What one run covers. */
export interface BackfillScope {
  sinceMs: number;
  /** null: every history type of the stages that run. */
  types: readonly HistoryDataType[] | null;
  /** null: every enabled venue. */
  venue: Venue | null;
  trades: boolean;
}

const UNIT_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `7d` -> ms; the config's duration syntax. */
export function parseBackfillDuration(text: string, param: string): number {
  const m = DURATION_PATTERN.exec(text.trim());
  const ms = m === null ? 0 : Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
  if (!(ms > 0)) throw new ParamError(param, `must be a duration like 90s, 15m, 12h or 7d, got ${JSON.stringify(text)}`);
  return ms;
}

/** Data types from a list (task param array or CLI `a,b`): each must have REST history. */
export function parseBackfillTypes(values: readonly unknown[], param: string): HistoryDataType[] {
  if (values.length === 0) throw new ParamError(param, 'must name at least one data type');
  return values.map((v) => {
    if (typeof v !== 'string' || !isHistoryDataType(v)) {
      const known = (DATA_TYPES as readonly string[]).includes(String(v));
      throw new ParamError(
        param,
        `${JSON.stringify(v)} ${known ? 'has no REST history to backfill' : 'is not a data type'}; use ${HISTORY_TYPES.join(', ')}`,
      );
    }
    return v;
  });
}

export function parseBackfillVenue(value: unknown, param: string, config: Config): Venue {
  const venue = VENUES.find((v) => v === value);
  if (venue === undefined) throw new ParamError(param, `${JSON.stringify(value)} is not a venue; use ${VENUES.join(', ')}`);
  if (!config.collector.venues[venue].enabled) throw new ParamError(param, `${venue} is not enabled in the config`);
  return venue;
}

/** Task params `{ since?, types?, venue?, trades? }` over the config's defaults; throws ParamError naming the param. */
export function scopeFromParams(params: Readonly<Record<string, unknown>>, config: Config): BackfillScope {
  const known = new Set(['since', 'types', 'venue', 'trades']);
  for (const name of Object.keys(params)) if (!known.has(name)) throw new ParamError(`params.${name}`, `unknown parameter; use ${[...known].join(', ')}`);
  const { since, types, venue, trades } = params;
  if (since !== undefined && typeof since !== 'string') throw new ParamError('params.since', 'must be a duration string like 7d');
  if (types !== undefined && !Array.isArray(types)) throw new ParamError('params.types', 'must be an array of data types');
  if (trades !== undefined && typeof trades !== 'boolean') throw new ParamError('params.trades', 'must be true or false');
  return {
    sinceMs: parseBackfillDuration(since ?? config.brain.init.since, since === undefined ? 'brain.init.since' : 'params.since'),
    types: types === undefined ? null : parseBackfillTypes(types as unknown[], 'params.types'),
    venue: venue === undefined ? null : parseBackfillVenue(venue, 'params.venue', config),
    trades: trades ?? config.brain.init.trades,
  };
}

/** The scope of the initialization itself: the config's, all venues and types. */
export function initScope(config: Config): BackfillScope {
  return scopeFromParams({}, config);
}

/** Whether a run over `scope` covers everything the initialization does (so it may mark it finished). */
export function coversInit(scope: BackfillScope, config: Config): boolean {
  return scope.types === null && scope.venue === null && (scope.trades || !config.brain.init.trades) && scope.sinceMs >= parseBackfillDuration(config.brain.init.since, 'brain.init.since');
}

export interface PlannedItem {
  key: string;
  stage: InitStage;
  venue: Venue;
  dataType: HistoryDataType;
  instrument: string;
}

export interface StagePlan {
  stage: InitStage;
  concurrency: number;
  items: PlannedItem[];
}

/** Stages in order with their items: configured streams of the stage's types, narrowed by the scope. */
export function planStages(config: Config, scope: BackfillScope): StagePlan[] {
  const streams = configuredStreams(config);
  return INIT_STAGES.filter((stage) => stage !== 'trade' || scope.trades || scope.types?.includes('trade') === true).map((stage) => {
    const types = STAGE_TYPES[stage].filter((t) => scope.types === null || scope.types.includes(t));
    const items = streams
      .filter((s): s is typeof s & { dataType: HistoryDataType } => (types as readonly DataType[]).includes(s.dataType))
      .filter((s) => scope.venue === null || s.venue === scope.venue)
      .map((s) => ({ key: itemKey(s.dataType, s.venue, s.instrument), stage, venue: s.venue, dataType: s.dataType, instrument: s.instrument }));
    return { stage, concurrency: config.brain.init.concurrency[stage], items };
  });
}

/** Ranges end at the last whole minute before the run: the newest candle of a minute is not final before it ends. */
const RANGE_STEP_MS = 60_000;

/** [fromMs, toMs] of a run at `now` looking `sinceMs` back, both inclusive. */
export function runRange(now: number, sinceMs: number): { fromMs: number; toMs: number } {
  const toMs = Math.floor(now / RANGE_STEP_MS) * RANGE_STEP_MS - 1;
  return { fromMs: toMs + 1 - sinceMs, toMs };
}

/**
 * A range being fetched. `cursor`: everything at or before it is published and confirmed (the
 * covered-up-to cursor; fromMs - 1 before the first window). `next`: within the window after the
 * cursor, the venue's next page (URL relative to the venue's REST base), when part of it is done.
 */
export interface Fill {
  fromMs: number;
  toMs: number;
  cursor: number;
  next: string | null;
}

/** Saved per item in job_progress. */
export interface ItemState {
  /** Covered, contiguous, both inclusive; null until a first fill finished. */
  coveredFrom: number | null;
  coveredTo: number | null;
  fill: Fill | null;
  /** Records published and confirmed, pages fetched: over every run. */
  records: number;
  pages: number;
  /** Failed tries in a row; reset by a page that succeeds. */
  tries: number;
  lastError: string | null;
  lastErrorAt: string | null;
  /** Left to the scheduled backfill after maxTries failed tries (its fill stays, to resume). */
  left: boolean;
  /** Why it cannot be fetched at all (no history by time, credentials), or what bounded it (the venue's horizon). */
  note: string | null;
  /** Not fetched: this is why (reported, not an error). */
  skipped: string | null;
}

export const EMPTY_ITEM: ItemState = {
  coveredFrom: null,
  coveredTo: null,
  fill: null,
  records: 0,
  pages: 0,
  tries: 0,
  lastError: null,
  lastErrorAt: null,
  left: false,
  note: null,
  skipped: null,
};

/** A saved state read back (job_progress is JSON): unknown shapes start over. */
export function readItemState(raw: unknown): ItemState {
  if (typeof raw !== 'object' || raw === null) return EMPTY_ITEM;
  const s = raw as Partial<ItemState>;
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const fill = s.fill;
  const validFill =
    typeof fill === 'object' && fill !== null && num(fill.fromMs) !== null && num(fill.toMs) !== null && num(fill.cursor) !== null
      ? { fromMs: fill.fromMs, toMs: fill.toMs, cursor: fill.cursor, next: typeof fill.next === 'string' ? fill.next : null }
      : null;
  return {
    coveredFrom: num(s.coveredFrom),
    coveredTo: num(s.coveredTo),
    fill: validFill,
    records: num(s.records) ?? 0,
    pages: num(s.pages) ?? 0,
    tries: num(s.tries) ?? 0,
    lastError: typeof s.lastError === 'string' ? s.lastError : null,
    lastErrorAt: typeof s.lastErrorAt === 'string' ? s.lastErrorAt : null,
    left: s.left === true,
    note: typeof s.note === 'string' ? s.note : null,
    skipped: typeof s.skipped === 'string' ? s.skipped : null,
  };
}

/**
 * The next range to fetch for an item asked to cover `want`, or null when it is covered. A fill in
 * progress (a run stopped or left it) is finished first, as it was planned, so its saved cursor
 * and next page are valid; then what is missing before the covered range, then after it.
 * Nothing covered is asked again.
 */
export function nextFill(state: ItemState, want: { fromMs: number; toMs: number }): Fill | null {
  if (state.fill !== null) return state.fill;
  const fresh = (fromMs: number, toMs: number): Fill | null => (fromMs <= toMs ? { fromMs, toMs, cursor: fromMs - 1, next: null } : null);
  if (state.coveredFrom === null || state.coveredTo === null) return fresh(want.fromMs, want.toMs);
  // Not adjacent to what is covered: a range after a gap would make the covered range a lie.
  if (want.toMs < state.coveredFrom - 1 || want.fromMs > state.coveredTo + 1) return fresh(want.fromMs, want.toMs);
  if (want.fromMs < state.coveredFrom) return fresh(want.fromMs, state.coveredFrom - 1);
  return fresh(state.coveredTo + 1, want.toMs);
}

/** The state once `fill` is fully fetched: the covered range grows by it (or becomes it, when not adjacent). */
export function completeFill(state: ItemState, fill: Fill): ItemState {
  const adjacent = state.coveredFrom !== null && state.coveredTo !== null && fill.toMs >= state.coveredFrom - 1 && fill.fromMs <= state.coveredTo + 1;
  return {
    ...state,
    fill: null,
    coveredFrom: adjacent ? Math.min(state.coveredFrom as number, fill.fromMs) : fill.fromMs,
    coveredTo: adjacent ? Math.max(state.coveredTo as number, fill.toMs) : fill.toMs,
  };
}

/**
 * Windows a fill is fetched in, aligned to multiples of this from the epoch: the cursor moves
 * window by window, oldest first, whichever way the venue pages inside a window.
 */
export const WINDOW_MS = 6 * 3_600_000;

/** The end of the window after `cursor` (inclusive). */
export function windowEnd(fill: Fill, windowMs = WINDOW_MS): number {
  return Math.min(fill.toMs, (Math.floor((fill.cursor + 1) / windowMs) + 1) * windowMs - 1);
}

/**
 * The start a venue can still answer for: `horizonMs` back from now (a venue answering nothing
 * before it must not pass for "nothing happened"). Returns the range to ask and a note when the
 * horizon cut it.
 */
export function boundByHorizon(want: { fromMs: number; toMs: number }, now: number, horizonMs: number | undefined, endpoint: string): { fromMs: number; toMs: number; note: string | null } {
  if (horizonMs === undefined) return { ...want, note: null };
  // A minute inside the horizon: the venue's own clock and ours disagree a little.
  const oldest = now - horizonMs + RANGE_STEP_MS;
  if (want.fromMs >= oldest) return { ...want, note: null };
  const fromMs = Math.min(want.toMs + 1, Math.ceil(oldest / RANGE_STEP_MS) * RANGE_STEP_MS);
  return { fromMs, toMs: want.toMs, note: `${endpoint} keeps ${formatHours(horizonMs)}: fetched from ${new Date(fromMs).toISOString()}, not ${new Date(want.fromMs).toISOString()}` };
}

function formatHours(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 48 && Number.isInteger(h / 24) ? `${h / 24} days` : `${Math.round(h)} h`;
}

export type ItemStatus = 'pending' | 'running' | 'done' | 'left' | 'skipped';

export function itemStatus(state: ItemState | null): ItemStatus {
  if (state === null) return 'pending';
  if (state.skipped !== null) return 'skipped';
  if (state.left) return 'left';
  if (state.fill !== null || state.coveredTo === null) return 'running';
  return 'done';
}

export type StageState = 'pending' | 'running' | 'done' | 'partial';

/** done: every item done (or skipped, with the reason reported); partial: finished with items left to the scheduled backfill. */
export function stageState(statuses: readonly ItemStatus[]): StageState {
  if (statuses.length === 0) return 'done';
  if (statuses.every((s) => s === 'pending')) return 'pending';
  if (statuses.every((s) => s === 'done' || s === 'skipped')) return 'done';
  if (statuses.every((s) => s === 'done' || s === 'skipped' || s === 'left')) return 'partial';
  return 'running';
}
