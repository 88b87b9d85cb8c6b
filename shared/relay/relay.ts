/**
 * The control plane's port to the relay (Azure Web PubSub). Small on purpose: mint a client
 * credential, look at a group, close connections.
 */
export interface RelayCredential {
  /** Client URL without any token, safe to log and to show. */
  url: string;
  /** Sent as `Authorization: Bearer`, so it never lands in proxy or access logs. */
  token: string;
}

export interface RelayConnection {
  connectionId: string;
  userId?: string;
}

export interface Relay {
  readonly hub: string;
  /** The client endpoint (`wss://host/client/hubs/<hub>`), for `GET /api/endpoints`. */
  readonly clientEndpoint: string;
  /** A credential that may only send to `group`, auto-joined to it, for `minutes` whole minutes. */
  mintCredential(userId: string, group: string, minutes: number): Promise<RelayCredential>;
  groupConnections(group: string): Promise<RelayConnection[]>;
  closeGroup(group: string, reason: string): Promise<void>;
}
