import type { TokenCredential } from "@azure/core-auth";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import type { Relay, RelayConnection, RelayCredential } from "./relay";

export type WebPubSubConnection =
  { connectionString: string } | { endpoint: string; credential: TokenCredential };

/**
 * Relay on Azure Web PubSub (or our emulator). With a key the token is signed locally; keyless
 * (a TokenCredential) it comes from `:generateToken`, whose expiry has minute granularity — which
 * is why deadlines and single use are enforced by the connect handler, not by token expiry.
 */
export class WebPubSubRelay implements Relay {
  private readonly client: WebPubSubServiceClient;
  readonly clientEndpoint: string;

  constructor(
    connection: WebPubSubConnection,
    readonly hub: string,
  ) {
    // Plain http is only ever a local emulator's endpoint; Azure endpoints are https.
    const options = { allowInsecureConnection: true };
    this.client =
      "connectionString" in connection
        ? new WebPubSubServiceClient(connection.connectionString, hub, options)
        : new WebPubSubServiceClient(connection.endpoint, connection.credential, hub);
    this.clientEndpoint = `${this.client.endpoint.replace(/^http/i, "ws").replace(/\/$/, "")}/client/hubs/${hub}`;
  }

  async mintCredential(userId: string, group: string, minutes: number): Promise<RelayCredential> {
    const { token, baseUrl } = await this.client.getClientAccessToken({
      userId,
      groups: [group],
      roles: [`webpubsub.sendToGroup.${group}`],
      expirationTimeInMinutes: minutes,
    });
    return { url: baseUrl, token };
  }

  async groupConnections(group: string): Promise<RelayConnection[]> {
    const out: RelayConnection[] = [];
    for await (const c of await this.client.group(group).listConnections()) {
      out.push({ connectionId: c.connectionId, ...(c.userId ? { userId: c.userId } : {}) });
    }
    return out;
  }

  async closeGroup(group: string, reason: string): Promise<void> {
    await this.client.group(group).closeAllConnections({ reason });
  }
}
