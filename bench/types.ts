/**
 * One row of `npm run bench`. Every figure stands beside a baseline measured in the same run,
 * because absolute numbers drift on shared machines.
 */
export interface BenchRow {
  /** Section of the report, e.g. "throughput", "latency", "scale", "control plane". */
  group: string;
  /** What was measured, including the conditions, e.g. "stream create p50 (c=1, Azurite)". */
  name: string;
  value: number;
  unit: string;
  /** The baseline's own name and value, measured in the same run; absent when a row has none. */
  baseline?: { name: string; value: number };
  /** A target from the issue, for the report's "target" column, e.g. "<= 20 ms". */
  target?: string;
  /** Free text: caveats, labels such as "signaller answers at once". */
  note?: string;
}

export interface BenchOptions {
  /** `--quick`: smaller sizes so the whole run stays under 60 s; figures are then indicative only. */
  quick: boolean;
}

export type BenchSuite = (options: BenchOptions) => Promise<BenchRow[]>;
