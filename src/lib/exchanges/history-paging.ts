import { MprismError } from '../errors.js';
import type { MarketRecord } from '../records.js';
import type { HistoryQuery, HistorySource, PollOptions, RestRequest, VenueCredentials } from './types.js';

/** Why paging stopped short of the venue's last page. */
export type HistoryPagingFailure = 'blocked' | 'no_progress' | 'non_decimal_id';

/** Paging a hole could not finish; `reason` tells a venue that repeats itself from a query that cannot be asked. */
export class HistoryPagingError extends MprismError {
  constructor(
    readonly reason: HistoryPagingFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface HistoryPagingLimits {
  /**
   * Pages in a row that bring no new record before paging gives up. A venue may answer a short
   * stretch with nothing new in it (a quiet window, an overlapping cursor); one that keeps doing so
   * is answering the same page forever.
   */
  maxPagesWithoutProgress: number;
}

export const DEFAULT_HISTORY_PAGING_LIMITS: HistoryPagingLimits = { maxPagesWithoutProgress: 5 };

/** Fetches one request; the caller owns the transport, retries and the venue's rate budget. */
export type HistoryGet = (request: RestRequest) => Promise<{ body: string; receiveTime: number }>;

const DECIMAL_ID = /^\d+$/;

/** One observation, as the brief's dedupe defines it: data type, instrument, event time and the type's own key. */
function observationKey(r: MarketRecord): string {
  let own = '';
  if (r.dataType === 'trade') own = r.tradeId;
  else if (r.dataType === 'lsr_top_position' || r.dataType === 'lsr_all_account') own = r.period;
  else if (r.dataType === 'volatility_index') own = r.resolution;
  return JSON.stringify([r.dataType, r.instrument, r.eventTime, own]);
}

function idBound(id: string | null, name: string): bigint | null {
  if (id === null) return null;
  if (!DECIMAL_ID.test(id)) throw new HistoryPagingError('non_decimal_id', `query.${name} ${JSON.stringify(id)} is not a decimal trade id`);
  return BigInt(id);
}

/** One page as the venue answered it: the records it added (possibly none) and the request for the next page. */
export interface HistoryPageStep {
  records: MarketRecord[];
  /** null: the query is covered (or the venue has no more). */
  next: RestRequest | null;
}

/**
 * Every page of one query, empty ones included, each with the request for the page after it: what
 * a caller that saves its place between pages needs (history initialization resumes from `next`).
 * `start` replaces the first request (a saved `next`). Filters, dedupe and errors as pageHistory.
 */
export async function* historyPages(
  source: HistorySource,
  restBaseUrl: string,
  query: HistoryQuery,
  credentials: VenueCredentials,
  options: PollOptions,
  get: HistoryGet,
  limits: HistoryPagingLimits = DEFAULT_HISTORY_PAGING_LIMITS,
  start: RestRequest | null = null,
): AsyncGenerator<HistoryPageStep> {
  const blocked = source.blockedReason(credentials);
  if (blocked !== null) throw new HistoryPagingError('blocked', `${source.endpoint}: ${blocked}`);
  const fromId = idBound(query.fromId, 'fromId');
  const toId = idBound(query.toId, 'toId');
  const inIds = (r: MarketRecord): boolean => {
    if (r.dataType !== 'trade' || (fromId === null && toId === null)) return true;
    if (!DECIMAL_ID.test(r.tradeId)) {
      throw new HistoryPagingError('non_decimal_id', `${source.endpoint}: trade id ${JSON.stringify(r.tradeId)} of ${r.instrument} is not decimal, so it cannot be held against the hole's ids`);
    }
    const id = BigInt(r.tradeId);
    return (fromId === null || id >= fromId) && (toId === null || id <= toId);
  };

  const seen = new Set<string>();
  let idle = 0;
  let request: RestRequest | null = start ?? source.request(restBaseUrl, query, credentials, options);
  while (request !== null) {
    const { body, receiveTime } = await get(request);
    const page = source.parsePage(body, query, request, receiveTime);
    const fresh: MarketRecord[] = [];
    for (const r of page.records) {
      if (r.eventTime < query.fromMs || r.eventTime > query.toMs || !inIds(r)) continue;
      const key = observationKey(r);
      if (seen.has(key)) continue;
      seen.add(key);
      fresh.push(r);
    }
    if (fresh.length > 0) idle = 0;
    else if (page.next !== null && ++idle >= limits.maxPagesWithoutProgress) {
      throw new HistoryPagingError(
        'no_progress',
        `${source.endpoint}: ${String(idle)} pages in a row brought nothing new for ${query.instrument} ` +
          `(last asked ${request.url}); the venue keeps answering the same page, stopped`,
      );
    }
    yield { records: fresh, next: page.next };
    request = page.next;
  }
}

/**
 * Every record of one hole, page by page: follows `next` until the source returns null, keeps only
 * records inside the query (event time within [fromMs, toMs]; trades also within [fromId, toId]
 * when those are set, compared as integers, since ids outgrow doubles and sort wrongly as text) and
 * never yields the same observation twice, so overlapping pages publish nothing twice.
 * Each yielded array is non-empty. Throws HistoryPagingError when the credentials cannot read the
 * source, when trade ids are not decimal, or after `maxPagesWithoutProgress` pages in a row with
 * nothing new; MalformedFrameError from the source's parsing passes through.
 */
export async function* pageHistory(
  source: HistorySource,
  restBaseUrl: string,
  query: HistoryQuery,
  credentials: VenueCredentials,
  options: PollOptions,
  get: HistoryGet,
  limits: HistoryPagingLimits = DEFAULT_HISTORY_PAGING_LIMITS,
): AsyncGenerator<MarketRecord[]> {
  for await (const page of historyPages(source, restBaseUrl, query, credentials, options, get, limits)) {
    if (page.records.length > 0) yield page.records;
  }
}
