/**
 * The agent of the channels bench, in a process of its own so that process.cpuUsage() there is what
 * a device owner pays. The child loads only what `devicestream agent` loads: were it forked from a
 * suite, it would also load the control plane and every emulator the suite imports, and its heap
 * would be several times a real agent's, which made each of its full garbage collections that much
 * dearer (docs/performance.md, "Channel cost").
 */
import { once } from "node:events";
import { Client } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { NoRetry } from "azure-iot-common";
import { startAgent } from "../client/cli/agent";
import { forkBenchChild } from "./child";

const CHILD_FLAG = "--bench-agent";

type Msg = { type: string; [k: string]: unknown };

export interface AgentStart {
  connectionString: string;
  caPem: string;
  relayEndpoint: string;
  hub: string;
  /** Stream name → loopback port. */
  targets: Record<string, number>;
}

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

async function runAgentChild(): Promise<void> {
  const [start] = (await once(process, "message")) as [AgentStart];
  const client = Client.fromConnectionString(start.connectionString, Mqtt);
  client.setRetryPolicy(new NoRetry());
  client.on("error", () => undefined);
  await client.setOptions({ ca: start.caPem });
  await client.open();
  const agent = startAgent(client, {
    targets: new Map(
      Object.entries(start.targets).map(([name, port]) => [name, { host: "127.0.0.1", port }]),
    ),
    relay: { endpoint: start.relayEndpoint, hub: start.hub, allowInsecure: true },
  });
  process.on("message", (m: Msg) => {
    if (m.type === "cpu") process.send?.({ type: "cpu", micros: cpuMicros() });
  });
  process.on("disconnect", () => void agent.close().finally(() => process.exit(0)));
  process.send?.({ type: "ready" });
}

/**
 * Starts the agent process. `execArgv` e.g. `--cpu-prof` or `--trace-gc`; BENCH_AGENT_NODE_OPTIONS
 * (space-separated) adds to it, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
 */
export async function startAgentProcess(start: AgentStart, execArgv: string[] = []) {
  const extra = (process.env.BENCH_AGENT_NODE_OPTIONS ?? "").split(" ").filter(Boolean);
  const { child, stop } = await forkBenchChild(__filename, CHILD_FLAG, start, {
    label: "bench agent",
    execArgv: [...execArgv, ...extra],
    stdout: extra.length > 0 ? "inherit" : "ignore",
  });
  return {
    cpuMicros: async (): Promise<number> => {
      const reply = once(child, "message") as Promise<[Msg]>;
      child.send({ type: "cpu" });
      return Number((await reply)[0].micros);
    },
    stop,
  };
}

if (require.main === module && process.argv[2] === CHILD_FLAG) {
  runAgentChild().catch((err: unknown) => {
    process.stderr.write(`bench agent: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
