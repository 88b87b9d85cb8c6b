/**
 * The emulator's state and behaviour behind both endpoints: hubs, groups and users; what a client
 * message does; how connections end. The client endpoint and the REST API only translate to it.
 */
import { EventEmitter } from "node:events";
import type { MessageData, UpstreamMessage } from "../../client/webpubsub/codec";
import { ClientConnection } from "./connection";
import type { EventDispatcher, EventSubject } from "./events";
import { OutboundMessage } from "./frames";
import type { ResolvedOptions } from "./options";

export interface ConnectionInfo {
  hub: string;
  connectionId: string;
  userId: string | undefined;
}

export interface LifecycleEvents {
  connected: [ConnectionInfo];
  /** A reliable connection resumed on a new socket. */
  recovered: [ConnectionInfo];
  disconnected: [ConnectionInfo & { reason: string }];
}

class HubState {
  readonly connections = new Map<string, ClientConnection>();
  readonly groups = new Map<string, Set<ClientConnection>>();
  readonly users = new Map<string, Set<ClientConnection>>();
}

const MAX_GROUP_NAME = 1024;
/** How long a closing socket may take to finish its close handshake before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (set && set.delete(value) && set.size === 0) map.delete(key);
}

/** Whitespace-only names are refused, as the official emulator does (WebPubSubNameValidator.cs). */
export function isValidGroupName(group: string): boolean {
  return group.trim().length > 0 && group.length <= MAX_GROUP_NAME;
}

export class WebPubSubService {
  readonly lifecycle = new EventEmitter<LifecycleEvents>();
  private readonly hubs = new Map<string, HubState>();

  constructor(
    private readonly options: ResolvedOptions,
    readonly events: EventDispatcher,
  ) {}

  private hub(name: string): HubState {
    const key = name.toLowerCase();
    let h = this.hubs.get(key);
    if (!h) this.hubs.set(key, (h = new HubState()));
    return h;
  }

  subject(conn: ClientConnection): EventSubject {
    return { hub: conn.hub, connectionId: conn.id, userId: conn.userId, subprotocol: conn.subprotocol };
  }

  newConnection(
    id: string,
    hub: string,
    userId: string | undefined,
    roles: Iterable<string>,
    protocol: ClientConnection["protocol"],
    subprotocol: string | undefined,
  ): ClientConnection {
    return new ClientConnection(
      id,
      hub.toLowerCase(),
      userId,
      roles,
      protocol,
      subprotocol,
      this.options,
      (c, reason) => this.close(c, reason, { abrupt: true }),
    );
  }

  /** A connection whose socket is open: it joins its groups and is announced. */
  register(conn: ClientConnection, groups: Iterable<string>): void {
    const h = this.hub(conn.hub);
    h.connections.set(conn.id, conn);
    if (conn.userId !== undefined) addTo(h.users, conn.userId, conn);
    for (const g of groups) this.join(conn, g);
    conn.sendControl({
      type: "connected",
      connectionId: conn.id,
      userId: conn.userId ?? "",
      ...(conn.reconnectionToken !== undefined ? { reconnectionToken: conn.reconnectionToken } : {}),
    });
    this.events.nonBlocking(this.subject(conn), "connected");
    this.announce("connected", { hub: conn.hub, connectionId: conn.id, userId: conn.userId });
  }

  /** Emits a lifecycle event; a throwing listener is logged, never propagated into socket handlers. */
  announce<K extends keyof LifecycleEvents>(event: K, ...args: LifecycleEvents[K]): void {
    try {
      (this.lifecycle as EventEmitter).emit(event, ...args);
    } catch (err) {
      this.options.log(
        `lifecycle listener for ${event} threw: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  find(hub: string, connectionId: string): ClientConnection | undefined {
    return this.hubs.get(hub.toLowerCase())?.connections.get(connectionId);
  }

  connections(hub: string): ClientConnection[] {
    return [...(this.hubs.get(hub.toLowerCase())?.connections.values() ?? [])];
  }

  groupMembers(hub: string, group: string): ClientConnection[] {
    return [...(this.hubs.get(hub.toLowerCase())?.groups.get(group) ?? [])];
  }

  userConnections(hub: string, userId: string): ClientConnection[] {
    return [...(this.hubs.get(hub.toLowerCase())?.users.get(userId) ?? [])];
  }

  join(conn: ClientConnection, group: string): void {
    if (conn.ended) return;
    conn.groups.add(group);
    addTo(this.hub(conn.hub).groups, group, conn);
  }

  leave(conn: ClientConnection, group: string): void {
    conn.groups.delete(group);
    removeFrom(this.hub(conn.hub).groups, group, conn);
  }

  sendToGroup(hub: string, group: string, message: OutboundMessage, exclude?: ReadonlySet<string>): void {
    const members = this.hubs.get(hub.toLowerCase())?.groups.get(group);
    if (!members) return;
    for (const member of members) if (!exclude?.has(member.id)) member.deliver(message);
  }

  sendToAll(hub: string, message: OutboundMessage, exclude?: ReadonlySet<string>): void {
    for (const conn of this.connections(hub)) if (!exclude?.has(conn.id)) conn.deliver(message);
  }

  /**
   * Ends a connection for good: tells a subprotocol client why (unless it is not listening: too slow
   * or silent, then the socket is cut at once),
   * closes the socket, and reports `disconnected` upstream exactly once.
   */
  close(conn: ClientConnection, reason: string, how: { abrupt?: boolean; code?: number } = {}): void {
    if (conn.ended) return;
    if (!how.abrupt) conn.sendControl({ type: "disconnected", reason });
    conn.ended = true;
    const ws = conn.ws;
    if (ws) {
      ws.close(how.code ?? (how.abrupt ? 1008 : 1000), reason.slice(0, 120));
      const timer = setTimeout(() => ws.terminate(), how.abrupt ? 0 : CLOSE_GRACE_MS);
      timer.unref();
      ws.once("close", () => clearTimeout(timer));
    }
    this.forget(conn, reason);
  }

  /** Bookkeeping when a connection is gone (socket already closed or never to be recovered). */
  forget(conn: ClientConnection, reason: string): void {
    conn.ended = true;
    if (conn.recoveryTimer) clearTimeout(conn.recoveryTimer);
    const h = this.hubs.get(conn.hub);
    if (!h || h.connections.get(conn.id) !== conn) return;
    h.connections.delete(conn.id);
    for (const g of conn.groups) removeFrom(h.groups, g, conn);
    if (conn.userId !== undefined) removeFrom(h.users, conn.userId, conn);
    if (h.connections.size === 0 && h.groups.size === 0) this.hubs.delete(conn.hub);
    this.options.log(`connection ${conn.id} on hub ${conn.hub} closed: ${reason}`);
    this.events.nonBlocking(this.subject(conn), "disconnected", reason);
    this.announce("disconnected", {
      hub: conn.hub,
      connectionId: conn.id,
      userId: conn.userId,
      reason,
    });
  }

  /** The socket of a live connection went away without the client asking to leave. */
  transportLost(conn: ClientConnection, reason: string): void {
    if (conn.ended) return;
    conn.ws = undefined;
    if (!conn.protocol.reliable) {
      this.forget(conn, reason);
      return;
    }
    conn.recoveryTimer = setTimeout(
      () => this.forget(conn, `${reason}; not recovered in time`),
      this.options.recoveryWindowMs,
    );
    conn.recoveryTimer.unref();
  }

  /** Keepalive: ping every open socket, and drop those silent for three intervals. */
  keepAlive(now: number): void {
    for (const h of [...this.hubs.values()]) {
      for (const conn of [...h.connections.values()]) {
        const ws = conn.ws;
        if (!ws) continue;
        if (now - conn.lastSeen > 3 * this.options.keepAliveIntervalMs) {
          this.close(conn, "KeepAliveTimeout", { abrupt: true });
        } else if (ws.readyState === ws.OPEN) {
          ws.ping();
        }
      }
    }
  }

  /** Closes every connection; resolves when all their sockets are closed. */
  async closeAll(reason: string): Promise<void> {
    const closed: Promise<unknown>[] = [];
    for (const h of [...this.hubs.values()]) {
      for (const conn of [...h.connections.values()]) {
        const ws = conn.ws;
        if (ws && ws.readyState !== ws.CLOSED)
          closed.push(new Promise((resolve) => ws.once("close", resolve)));
        this.close(conn, reason);
      }
    }
    await Promise.all(closed);
  }

  // ---- what a client message does ----

  handleUpstream(conn: ClientConnection, msg: UpstreamMessage): void {
    const ack = (ackId: number | undefined, error?: { name: string; message: string }): void => {
      if (ackId === undefined) return;
      conn.sendControl(
        error ? { type: "ack", ackId, success: false, error } : { type: "ack", ackId, success: true },
      );
    };
    const duplicate = (ackId: number | undefined): boolean => {
      if (ackId === undefined || conn.rememberAckId(ackId)) return false;
      ack(ackId, { name: "Duplicate", message: `Message with ackId ${ackId} was already processed.` });
      return true;
    };
    switch (msg.type) {
      case "ping":
        conn.sendControl({ type: "pong" });
        return;
      case "sequenceAck":
        conn.acknowledge(msg.sequenceId);
        return;
      case "joinGroup":
      case "leaveGroup": {
        if (duplicate(msg.ackId)) return;
        if (!isValidGroupName(msg.group))
          return ack(msg.ackId, { name: "BadRequest", message: "Invalid group name." });
        if (!conn.can("joinLeaveGroup", msg.group)) {
          return ack(msg.ackId, {
            name: "Forbidden",
            message: `No permission to join or leave group '${msg.group}'.`,
          });
        }
        if (msg.type === "joinGroup") this.join(conn, msg.group);
        else this.leave(conn, msg.group);
        return ack(msg.ackId);
      }
      case "sendToGroup": {
        if (duplicate(msg.ackId)) return;
        if (!isValidGroupName(msg.group))
          return ack(msg.ackId, { name: "BadRequest", message: "Invalid group name." });
        if (!conn.can("sendToGroup", msg.group)) {
          return ack(msg.ackId, {
            name: "Forbidden",
            message: `No permission to send to group '${msg.group}'.`,
          });
        }
        const out = new OutboundMessage(
          "group",
          msg.data ?? { kind: "json", json: "null" },
          msg.group,
          conn.userId,
        );
        this.sendToGroup(conn.hub, msg.group, out, msg.noEcho ? new Set([conn.id]) : undefined);
        return ack(msg.ackId);
      }
      case "event": {
        if (duplicate(msg.ackId)) return;
        this.userEvent(conn, msg.event, msg.data, msg.ackId);
        return;
      }
    }
  }

  /**
   * Blocking user event: the handler's 200 body returns to the client; a failure drops the
   * connection, and so does an event no handler takes (the official emulator's
   * UpstreamEventDispatcher.cs: "a user event is synchronous and expects to be delivered").
   */
  userEvent(conn: ClientConnection, event: string, data: MessageData | undefined, ackId?: number): void {
    const subject = this.subject(conn);
    conn.eventChain = conn.eventChain.then(async () => {
      if (conn.ended) return;
      if (!this.events.wantsUserEvent(conn.hub, event)) {
        this.options.log(`user event ${event} from ${conn.id}: no event handler takes it`);
        this.close(conn, "No event handler is configured for this user event.");
        return;
      }
      const result = await this.events.userEvent(subject, event, data);
      if (conn.ended) return;
      if (!result.ok) {
        this.options.log(`user event ${event} from ${conn.id}: ${result.reason}`);
        this.close(conn, "Event handler failed to process the event.");
        return;
      }
      if (result.data) conn.deliver(new OutboundMessage("server", result.data));
      if (ackId !== undefined) conn.sendControl({ type: "ack", ackId, success: true });
    });
  }
}
