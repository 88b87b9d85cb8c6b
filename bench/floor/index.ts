/**
 * The floor of the channels bench: the least any tunnel over our relay can cost. Churn and
 * request/response through a `forward` used to be compared only with direct loopback TCP, which has
 * no relay hops at all, so an absolute goal (1,500 conn/s) measured the Web PubSub emulator as much
 * as the tunnel. The floor carries the same bytes over the same hops in the same process layout:
 *   TCP client → this process's listener → the suite's Web PubSub emulator → a device process →
 *   TCP target,
 * through the same relay client as the tunnel (connectRelay: protobuf sendToGroup with noEcho,
 * corked per tick), with a multiplexer that does nothing a tunnel could leave out (./mux.ts). What
 * the tunnel loses against it is the tunnel's own cost; what the floor loses against direct
 * loopback is the relay's.
 *
 * Both sides join one group of a hub other than the tunnel's: the "streams" hub's event handler is
 * the control plane, which refuses connections it did not mint, while a hub without a handler
 * accepts any valid token (as Web PubSub does). The tokens are minted here, from the connection
 * string, with the one role the group needs.
 */
import { type Socket, createServer } from "node:net";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { connectRelay } from "../../client/sdk/relay/connection";
import { listen } from "../suites/tunnel";
import { startFloorDevice } from "./device";
import { FloorMux } from "./mux";

const HUB = "floor";
const GROUP = "floor";

export interface FloorOptions {
  /** The Web PubSub emulator's connection string and endpoint (localStack). */
  relayConnectionString: string;
  relayEndpoint: string;
  /** The device side dials this loopback port for every channel. */
  targetPort: number;
}

/** Starts both sides; resolves with the service side's listening port once both are in the group. */
export async function startFloor(
  options: FloorOptions,
): Promise<{ port: number; close: () => Promise<void> }> {
  const service = new WebPubSubServiceClient(options.relayConnectionString, HUB, {
    allowInsecureConnection: true,
  });
  const mint = (userId: string) =>
    service.getClientAccessToken({ userId, groups: [GROUP], roles: [`webpubsub.sendToGroup.${GROUP}`] });
  const policy = { endpoint: options.relayEndpoint, hub: HUB, allowInsecure: true };

  const deviceToken = await mint("floor-device");
  const device = await startFloorDevice({
    relayEndpoint: options.relayEndpoint,
    hub: HUB,
    group: GROUP,
    url: deviceToken.baseUrl,
    token: deviceToken.token,
    targetPort: options.targetPort,
  });
  const serviceToken = await mint("floor-service");
  const relay = await connectRelay({
    url: serviceToken.baseUrl,
    token: serviceToken.token,
    group: GROUP,
    policy,
  }).catch(async (err: unknown) => {
    await device.stop();
    throw err;
  });
  const mux = new FloorMux(relay);
  let next = 0;
  const sockets = new Set<Socket>();
  // Half-open as the forward listens (client/cli/forward.ts): the client's FIN crosses on its own.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    mux.open(next, socket);
    next = (next + 1) >>> 0; // the frame's u32
  });
  const port = await listen(server);
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      relay.close("bench done");
      await Promise.all([relay.whenClosed(), device.stop()]);
    },
  };
}
