/**
 * The agent is a long-lived process, often on a small device. Under allocation (the device SDK's
 * start-up, a bulk transfer) V8 grows the young generation from 1 MiB semi-spaces to 16 MiB ones and
 * keeps them: that alone held about 30 MiB of the agent's RSS after a bulk transfer, with a live
 * heap of 18 MiB (docs/performance.md, "Footprint"). At its initial size the young generation is
 * scavenged more often, each scavenge as cheap (its cost follows what survives, and the tunnel's
 * payloads live outside the heap, in Buffers).
 *
 * `--semi-space-growth-factor` is read each time V8 considers growing, so it can be set once the
 * process runs; `--max-semi-space-size` (NODE_OPTIONS) cannot, and wins when the user gives it.
 * Measured on Node 20 (V8 11.3). Some later V8 versions raise this factor to at least 2 through a
 * flag implication; where that applies at run time the call changes nothing, and
 * `NODE_OPTIONS=--max-semi-space-size=1` is the way (bench/suites/footprint.ts shows which).
 */
import { setFlagsFromString } from "node:v8";

export function keepYoungGenerationSmall(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): boolean {
  const chosen = [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].some(
    (a) => /^--(max|min)[-_]semi[-_]space/.test(a) || /^--semi[-_]space/.test(a),
  );
  if (chosen) return false;
  setFlagsFromString("--semi-space-growth-factor=1");
  return true;
}
