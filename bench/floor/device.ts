/**
 * The floor's device side, in a process of its own as the channels bench's agent is
 * (bench/agentProcess.ts): it loads only the relay client and the floor's multiplexer, joins the
 * relay with a token minted by the bench process, and dials the target for each channel opened.
 */
import { connect } from "node:net";
import { connectRelay } from "../../client/sdk/relay/connection";
import { forkBenchChild } from "../child";
import { FloorMux } from "./mux";

const CHILD_FLAG = "--bench-floor-device";

export interface FloorDeviceStart {
  relayEndpoint: string;
  hub: string;
  group: string;
  /** Client URL and token from WebPubSubServiceClient.getClientAccessToken. */
  url: string;
  token: string;
  targetPort: number;
}

async function runDeviceChild(): Promise<void> {
  const start = await new Promise<FloorDeviceStart>((resolve) => process.once("message", resolve));
  const relay = await connectRelay({
    url: start.url,
    token: start.token,
    group: start.group,
    policy: { endpoint: start.relayEndpoint, hub: start.hub, allowInsecure: true },
  });
  // As the agent dials (client/cli/agent.ts): half-open, so the target's FIN crosses on its own.
  new FloorMux(relay, () => connect({ host: "127.0.0.1", port: start.targetPort, allowHalfOpen: true }));
  process.on("disconnect", () => {
    relay.close("bench done");
    void relay.whenClosed().finally(() => process.exit(0));
  });
  process.send?.({ type: "ready" });
}

export function startFloorDevice(start: FloorDeviceStart) {
  return forkBenchChild(__filename, CHILD_FLAG, start, { label: "bench floor device" });
}

if (require.main === module && process.argv[2] === CHILD_FLAG) {
  runDeviceChild().catch((err: unknown) => {
    process.stderr.write(`bench floor device: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
