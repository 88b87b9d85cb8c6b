import { createServer, type Server, type TLSSocket } from "node:tls";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { type EventEmitter, once } from "node:events";
import { Aedes, type AuthenticateError, type MqttClient, type PublishPacket } from "./aedes";
import { type EmulatorLog, printable } from "../log";
import type { HubHosts } from "../hub";
import type { IdentityRegistry } from "../registry";
import { SasError, parseSas, verifySas } from "../sas";
import { type Identity, identityKey, identityResourcePath, parseIdentityKey } from "../identity";
import {
  METHODS_FILTER,
  mayPublish,
  maySubscribe,
  methodRequestTopic,
  parseMethodResponseTopic,
} from "./topics";

export interface MethodResponse {
  key: string;
  rid: string;
  status: number;
  body: Buffer;
}

export interface DeviceGatewayOptions {
  registry: IdentityRegistry;
  hosts: HubHosts;
  tls: { key: string; cert: string };
  log: EmulatorLog;
}

interface Session {
  client: MqttClient;
  identity: Identity;
}

// CONNACK return codes (MQTT 3.1.1 §3.2.2.3); the device SDK maps both to UnauthorizedError.
const BAD_CREDENTIALS = 4;
const NOT_AUTHORIZED = 5;

class ConnectRefused extends Error {
  constructor(
    readonly returnCode: typeof BAD_CREDENTIALS | typeof NOT_AUTHORIZED,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The device side of the hub: MQTT 3.1.1 on aedes, over TLS (its own port) or over any other byte
 * stream handed to handle() (the WebSocket endpoint). It authenticates CONNECT with device or
 * module SAS, keeps one session per identity (aedes drops the older connection), confines every
 * identity to its own topics, and delivers method requests to exactly one connection.
 */
export class DeviceGateway {
  private broker?: Aedes;
  private server?: Server;
  private readonly sockets = new Set<TLSSocket>();
  /** Who is at the other end of each connection, for the log. */
  private readonly peers = new WeakMap<object, string>();
  private readonly sessions = new Map<string, Session>();
  private readonly identities = new WeakMap<MqttClient, Identity>();
  private readonly closeReasons = new WeakMap<MqttClient, string>();
  private readonly keepalives = new WeakMap<MqttClient, number>();
  /**
   * Per connection, not per session: aedes resumes reading right after CONNACK, so a client that
   * subscribes at once (the SDK does after a reconnect) can SUBSCRIBE before 'clientReady'.
   */
  private readonly methodSubscribers = new WeakSet<MqttClient>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly responseListeners = new Set<(response: MethodResponse) => void>();

  constructor(private readonly options: DeviceGatewayOptions) {}

  async start(host: string, port: number): Promise<number> {
    const broker = await Aedes.createBroker({
      // IoT Hub client IDs are "deviceId/moduleId": up to 257 characters.
      maxClientsIdLength: 257,
      preConnect: (client, packet, done) => {
        this.keepalives.set(client, packet.keepalive ?? 0);
        // Sessions are not kept: the device SDK re-subscribes after every connect anyway, and a
        // stateless broker cannot restore a subscription without telling us.
        packet.clean = true;
        done(null, true);
      },
      authenticate: (client, username, password, done) => {
        try {
          const identity = this.checkConnect(client.id, username, password);
          this.identities.set(client, identity);
          // aedes closes the older connection of this client ID before this one is ready.
          const previous = this.sessions.get(identityKey(identity));
          if (previous) this.closeReasons.set(previous.client, "replaced by a newer connection");
          done(null, true);
        } catch (err) {
          const refused =
            err instanceof ConnectRefused
              ? err
              : new ConnectRefused(
                  NOT_AUTHORIZED,
                  `internal error: ${err instanceof Error ? err.message : String(err)}`,
                );
          this.options.log(
            `mqtt connect refused for '${printable(client.id)}' from ${this.remote(client)}: ${refused.message}`,
          );
          const error: AuthenticateError = Object.assign(new Error(refused.message), {
            returnCode: refused.returnCode,
          });
          done(error, false);
        }
      },
      authorizeSubscribe: (client, subscription, done) => {
        const identity = this.identities.get(client);
        if (!identity || !maySubscribe(identity, subscription.topic)) {
          this.options.log(
            `mqtt subscribe denied for '${printable(client.id)}': ${printable(subscription.topic)}`,
          );
          done(null, null); // SUBACK 0x80 for this filter
          return;
        }
        // IoT Hub would grant QoS 1 for a QoS 2 request; aedes echoes the requested QoS in SUBACK
        // whatever we return, so we do not pretend otherwise. The hub only ever sends QoS 0.
        done(null, subscription);
      },
      authorizePublish: (client, packet, done) => {
        const identity = client ? this.identities.get(client) : undefined;
        const reason =
          !identity || !mayPublish(identity, packet.topic)
            ? "published to a topic it does not own"
            : packet.qos === 2
              ? "published with QoS 2, which IoT Hub does not support"
              : undefined;
        if (reason) {
          this.options.log(
            `mqtt publish denied for '${printable(client?.id)}': ${printable(packet.topic)} (disconnecting)`,
          );
          if (client) this.closeReasons.set(client, reason);
          done(new Error("publish not allowed"));
          return;
        }
        // Nothing a device publishes is kept for later subscribers.
        packet.retain = false;
        done(null);
      },
      // Devices never receive each other's messages: only hub-originated packets (no clientId) go out.
      // aedes stamps the sender's ID on packets it routes from a client; our own deliveries carry none.
      authorizeForward: (_client, packet) =>
        (packet as { clientId?: string }).clientId === undefined ? packet : null,
      published: (packet, client, done) => {
        if (client) this.onDevicePublish(client, packet);
        done(null);
      },
    });
    // aedes reports persistence failures here; an unhandled 'error' would end the process.
    (broker as EventEmitter).on("error", (err: Error) =>
      this.options.log(`mqtt broker error: ${err.message}`),
    );
    broker.on("clientReady", (client) => this.onReady(client));
    broker.on("clientDisconnect", (client) => this.onDisconnect(client));
    broker.on("keepaliveTimeout", (client) => this.closeReasons.set(client, "keepalive timeout"));
    broker.on("clientError", (client, err) => {
      if (!this.closeReasons.has(client)) this.closeReasons.set(client, `error: ${err.message}`);
    });
    broker.on("subscribe", (subscriptions, client) => {
      // aedes reports refused filters with their granted QoS, 128.
      const granted = subscriptions.filter((s) => (s.qos as number) !== 128).map((s) => s.topic);
      if (granted.includes(METHODS_FILTER)) this.setMethods(client, true);
    });
    broker.on("unsubscribe", (topics, client) => {
      if (topics.includes(METHODS_FILTER)) this.setMethods(client, false);
    });
    this.broker = broker;

    const server = createServer({ key: this.options.tls.key, cert: this.options.tls.cert }, (socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      this.handle(socket, `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`);
    });
    server.on("error", (err: Error) => this.options.log(`mqtt server error: ${err.message}`));
    server.on("tlsClientError", (err, socket) => {
      this.options.log(`mqtt TLS handshake failed from ${socket.remoteAddress ?? "?"}: ${err.message}`);
    });
    this.server = server;
    server.listen(port, host);
    await once(server, "listening");
    return (server.address() as AddressInfo).port;
  }

  /**
   * Serves one MQTT connection over `stream` with the same authentication and confinement as the
   * TLS port; `peer` names the other end in the log. The stream is destroyed once the gateway is closed.
   */
  handle(stream: Duplex, peer: string): void {
    if (!this.broker) {
      stream.destroy();
      return;
    }
    this.peers.set(stream, peer);
    this.broker.handle(stream);
  }

  async close(): Promise<void> {
    for (const waiters of this.waiters.values()) for (const wake of waiters) wake();
    const broker = this.broker;
    const server = this.server;
    this.broker = undefined;
    this.server = undefined;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    if (server) {
      const closed = once(server, "close");
      server.close();
      for (const socket of this.sockets) socket.destroy();
      await closed;
    }
    this.sessions.clear();
  }

  isConnected(identity: Identity): boolean {
    return this.sessions.has(identityKey(identity));
  }

  hasMethodSubscriber(key: string): boolean {
    const session = this.sessions.get(key);
    return session !== undefined && this.methodSubscribers.has(session.client);
  }

  /** Resolves true as soon as the identity is connected and subscribed to methods, false at the timeout. */
  async waitForMethodSubscriber(key: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.hasMethodSubscriber(key)) return true;
    if (timeoutMs <= 0 || !this.broker || signal?.aborted) return false;
    return new Promise<boolean>((resolve) => {
      const set = this.waiters.get(key) ?? new Set<() => void>();
      this.waiters.set(key, set);
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", finish);
        set.delete(finish);
        if (set.size === 0 && this.waiters.get(key) === set) this.waiters.delete(key);
        resolve(this.hasMethodSubscriber(key));
      };
      const timer = setTimeout(finish, timeoutMs);
      signal?.addEventListener("abort", finish, { once: true });
      set.add(finish);
    });
  }

  /** Publishes a method request to the identity's current connection; false when there is none. */
  sendMethodRequest(key: string, methodName: string, rid: string, payload: Buffer): boolean {
    const session = this.sessions.get(key);
    if (!session || !this.methodSubscribers.has(session.client)) return false;
    const packet: PublishPacket = {
      cmd: "publish",
      topic: methodRequestTopic(methodName, rid),
      payload,
      qos: 0,
      retain: false,
      dup: false,
    };
    session.client.publish(packet, (err) => {
      if (err) this.options.log(`mqtt delivery to '${key}' failed: ${err.message}`);
    });
    return true;
  }

  onMethodResponse(listener: (response: MethodResponse) => void): () => void {
    this.responseListeners.add(listener);
    return () => this.responseListeners.delete(listener);
  }

  /** Ends the identity's connection, e.g. when it is deleted, disabled or its keys change. */
  disconnect(identity: Identity, reason: string): void {
    const session = this.sessions.get(identityKey(identity));
    if (!session) return;
    this.closeReasons.set(session.client, reason);
    session.client.close();
  }

  private checkConnect(
    clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
  ): Identity {
    const identity = parseIdentityKey(clientId);
    if (!identity) {
      throw new ConnectRefused(NOT_AUTHORIZED, "the client ID is not a device ID or deviceId/moduleId");
    }
    const slash = username?.indexOf("/") ?? -1;
    const userHost = username?.slice(0, slash) ?? "";
    if (
      !username ||
      slash <= 0 ||
      !this.options.hosts.accepts(userHost) ||
      !username.startsWith(`${userHost}/${clientId}/`)
    ) {
      throw new ConnectRefused(
        BAD_CREDENTIALS,
        "the username must be {hub host}/{client ID}/?api-version=...",
      );
    }
    if (!password || password.length === 0) {
      throw new ConnectRefused(BAD_CREDENTIALS, "the password must be a SAS token");
    }
    const record = this.options.registry.get(identity);
    if (!record) throw new ConnectRefused(NOT_AUTHORIZED, "the identity is not registered");
    if (record.status !== "enabled") throw new ConnectRefused(NOT_AUTHORIZED, "the identity is disabled");
    try {
      const sas = parseSas(password.toString("utf8"));
      const slashAt = sas.resource.indexOf("/");
      const srHost = sas.resource.slice(0, slashAt);
      const srPath = sas.resource.slice(slashAt + 1).replace(/\/$/, "");
      if (slashAt <= 0 || !this.options.hosts.accepts(srHost) || srPath !== identityResourcePath(identity)) {
        throw new SasError(`the token's sr does not name ${identityResourcePath(identity)} on this hub`);
      }
      if (sas.keyName !== undefined) throw new SasError("policy (skn) tokens are not accepted for devices");
      verifySas(sas, [record.primaryKey, record.secondaryKey]);
    } catch (err) {
      if (err instanceof SasError) throw new ConnectRefused(BAD_CREDENTIALS, err.message);
      throw err;
    }
    return identity;
  }

  private onReady(client: MqttClient): void {
    const identity = this.identities.get(client);
    if (!identity) {
      client.close();
      return;
    }
    const key = identityKey(identity);
    this.sessions.set(key, { client, identity });
    const keepalive = this.keepalives.get(client);
    this.options.log(`mqtt connect ${key} from ${this.remote(client)} (keepalive ${keepalive ?? 0} s)`);
    this.wake(key);
  }

  private onDisconnect(client: MqttClient): void {
    const identity = this.identities.get(client);
    if (!identity) return;
    const key = identityKey(identity);
    if (this.sessions.get(key)?.client === client) this.sessions.delete(key);
    const reason = this.closeReasons.get(client) ?? "connection closed";
    this.options.log(`mqtt disconnect ${key} (${reason})`);
  }

  private setMethods(client: MqttClient, subscribed: boolean): void {
    const identity = this.identities.get(client);
    if (!identity) return;
    if (!subscribed) {
      this.methodSubscribers.delete(client);
      return;
    }
    this.methodSubscribers.add(client);
    this.wake(identityKey(identity));
  }

  /** Lets waiters re-check; each resolves only once the identity has a method subscriber. */
  private wake(key: string): void {
    if (!this.hasMethodSubscriber(key)) return;
    for (const wake of this.waiters.get(key) ?? []) wake();
  }

  private onDevicePublish(client: MqttClient, packet: PublishPacket): void {
    const identity = this.identities.get(client);
    if (!identity || !packet.topic.startsWith("$iothub/methods/res/")) return;
    const parsed = parseMethodResponseTopic(packet.topic);
    const key = identityKey(identity);
    if (!parsed) {
      this.options.log(`mqtt ignored a malformed method answer from ${key}: ${printable(packet.topic)}`);
      return;
    }
    const body = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    for (const listener of this.responseListeners)
      listener({ key, rid: parsed.rid, status: parsed.status, body });
  }

  private remote(client: MqttClient): string {
    return this.peers.get(client.conn) ?? "?";
  }
}
