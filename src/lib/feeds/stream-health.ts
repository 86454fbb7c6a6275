import type { DataType, PolledDataType, Venue } from '../config/schema.js';
import type { CollectorMetrics } from './collector-metrics.js';
import { combinedFreshness, freshness, staleThresholdMs, type Freshness } from './freshness.js';

export interface StreamHealth {
  venue: string;
  dataType: DataType;
  source: 'ws' | 'rest';
  /** Combined from `instruments` (combinedFreshness): one stale instrument makes it stale. */
  status: Freshness;
  /** Newest success over all instruments. */
  lastSuccessAt: string | null;
  ageSeconds: number | null;
  /** Polled types: the first of the instruments' lastError. */
  lastError: string | null;
  /** Each configured instrument, so a dead symbol shows up beside a live one. */
  instruments: InstrumentHealth[];
}

export interface InstrumentHealth {
  instrument: string;
  status: Freshness;
  lastSuccessAt: string | null;
  ageSeconds: number | null;
  /** Polled types: code of this instrument's last failed request since its last success. */
  lastError: string | null;
}

/** The inner map of `outer` at `key`, created on first use. */
function innerMap<K, IK, V>(outer: Map<K, Map<IK, V>>, key: K): Map<IK, V> {
  let inner = outer.get(key);
  if (inner === undefined) outer.set(key, (inner = new Map()));
  return inner;
}

export interface StreamHealthOptions {
  venue: Venue;
  dataTypes: readonly DataType[];
  polledTypes: readonly PolledDataType[];
  /** The instrument ids the configured symbols' records carry: what health expects to hear from. */
  instruments: readonly string[];
  startedAt: number;
  /** Before its first record a stream is `starting`, not `stale`, for this long. */
  graceMs: number;
  metrics: CollectorMetrics;
}

/**
 * Freshness of one venue's streams, per data type and configured instrument, from the receive
 * time of their newest records, with the last error that explains a silent one.
 */
export class StreamHealthTracker {
  /** Receive time of the newest success per data type and instrument. */
  private readonly lastSuccess = new Map<DataType, Map<string, number>>();
  private readonly newestSuccess = new Map<DataType, number>();
  /** Code of the last failed poll per data type and instrument, until that poll succeeds again. */
  private readonly lastPollError = new Map<DataType, Map<string, string>>();
  /** Why an instrument's contract value is not known yet; shown on its WebSocket streams. */
  private readonly contractValueError = new Map<string, string>();

  constructor(private readonly opts: StreamHealthOptions) {}

  markSuccess(dataType: DataType, instrument: string, at: number): void {
    const byInstrument = innerMap(this.lastSuccess, dataType);
    if (byInstrument.get(instrument) === at) return;
    byInstrument.set(instrument, at);
    if (at > (this.newestSuccess.get(dataType) ?? -Infinity)) this.newestSuccess.set(dataType, at);
    // The gauges follow at the end of this turn of the event loop, once per stream, not per record
    // (a labelled gauge update per record cost more than the rest of this): a scrape, which runs in
    // a turn of its own, sees the same values.
    let instruments = this.gaugesDue.get(dataType);
    if (instruments === undefined) this.gaugesDue.set(dataType, (instruments = new Set()));
    instruments.add(instrument);
    if (!this.gaugeUpdateScheduled) {
      this.gaugeUpdateScheduled = true;
      setImmediate(() => this.updateGauges());
    }
  }

  /** Streams whose newest success the gauges do not show yet. */
  private readonly gaugesDue = new Map<DataType, Set<string>>();
  private gaugeUpdateScheduled = false;

  private updateGauges(): void {
    this.gaugeUpdateScheduled = false;
    const { venue, metrics } = this.opts;
    for (const [dataType, instruments] of this.gaugesDue) {
      const byInstrument = this.lastSuccess.get(dataType);
      for (const instrument of instruments) {
        const at = byInstrument?.get(instrument);
        if (at !== undefined) metrics.instrumentLastSuccess.set({ venue, data_type: dataType, instrument }, at / 1000);
      }
      const newest = this.newestSuccess.get(dataType);
      if (newest !== undefined) metrics.lastSuccess.set({ venue, data_type: dataType }, newest / 1000);
    }
    this.gaugesDue.clear();
  }

  /**
   * A poll answered: its error is cleared. Freshness comes from the records themselves: an answer
   * that carries none is the REST twin of an acknowledged but silent subscription, and must not look fresh.
   */
  pollSucceeded(dataType: DataType, instrument: string): void {
    this.lastPollError.get(dataType)?.delete(instrument);
  }

  pollFailed(dataType: DataType, instrument: string, code: string): void {
    innerMap(this.lastPollError, dataType).set(instrument, code);
  }

  /** null: the value is known now. */
  contractValueProblem(instrument: string, problem: string | null): void {
    if (problem === null) this.contractValueError.delete(instrument);
    else this.contractValueError.set(instrument, problem);
  }

  streams(now: number): StreamHealth[] {
    const { venue, graceMs, startedAt } = this.opts;
    const at = (last: number | null) => ({
      lastSuccessAt: last === null ? null : new Date(last).toISOString(),
      ageSeconds: last === null ? null : Math.max(0, (now - last) / 1000),
    });
    return this.opts.dataTypes.map((dataType): StreamHealth => {
      const polled = (this.opts.polledTypes as readonly DataType[]).includes(dataType);
      const byInstrument = this.lastSuccess.get(dataType);
      const instruments = this.opts.instruments.map((instrument): InstrumentHealth => {
        const last = byInstrument?.get(instrument) ?? null;
        const status = freshness({ now, startedAt, lastSuccessAt: last, thresholdMs: staleThresholdMs(dataType), graceMs });
        const lastError = polled ? this.lastPollError.get(dataType)?.get(instrument) : this.contractValueError.get(instrument);
        return { instrument, status, ...at(last), lastError: lastError ?? null };
      });
      const newest = this.newestSuccess.get(dataType) ?? null;
      return {
        venue,
        dataType,
        source: polled ? 'rest' : 'ws',
        status: combinedFreshness(dataType, instruments.map((i) => i.status)),
        ...at(newest),
        lastError: instruments.find((i) => i.lastError !== null)?.lastError ?? null,
        instruments,
      };
    });
  }
}
