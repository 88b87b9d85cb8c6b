import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import type { TunnelCloseInfo, TunnelSession } from "../../tunnel";
import type { RelayConnection } from "../relay";

export interface DeviceStreamInfo {
  streamId: string;
  deviceId: string;
  moduleId?: string;
  name: string;
  /** What the device returned with its acceptance. */
  deviceResponse?: unknown;
  expiresAt: string;
}

interface DeviceStreamEvents {
  /** Once, with the reason and the byte counts; a reason other than Normal means it failed. */
  close: [info: TunnelCloseInfo];
}

/**
 * An open stream to a device: a tunnel over its relay connection. Each channel is a Duplex to the
 * target the device mapped to the stream's name.
 */
export class DeviceStream extends EventEmitter<DeviceStreamEvents> {
  readonly streamId: string;
  readonly deviceId: string;
  readonly moduleId: string | undefined;
  readonly name: string;
  readonly deviceResponse: unknown;
  readonly expiresAt: string;
  private closeInfo: TunnelCloseInfo | undefined;
  private readonly ended: Promise<TunnelCloseInfo>;

  constructor(
    info: DeviceStreamInfo,
    private readonly session: TunnelSession,
    private readonly relay: RelayConnection,
  ) {
    super();
    this.streamId = info.streamId;
    this.deviceId = info.deviceId;
    this.moduleId = info.moduleId;
    this.name = info.name;
    this.deviceResponse = info.deviceResponse;
    this.expiresAt = info.expiresAt;
    this.ended = new Promise((resolve) => {
      session.once("close", (closeInfo) => {
        this.closeInfo = closeInfo;
        resolve(closeInfo);
        this.emit("close", closeInfo);
      });
    });
  }

  get closed(): boolean {
    return this.closeInfo !== undefined;
  }

  get openChannelCount(): number {
    return this.session.openChannelCount;
  }

  /** The most channels the device accepts at once on this stream (from its HELLO). */
  get channelCapacity(): number {
    return this.session.channelCapacity ?? 0;
  }

  /**
   * Opens a channel; rejects with a TunnelError (code = reason) when refused or the stream ended.
   * On a full stream it waits up to `waitInMs` (default 30 s) for a channel to finish, in order of
   * arrival, then rejects with `ChannelLimit`. `early`: see TunnelSession.openChannel (a REFUSE then
   * errors the channel rather than rejecting).
   */
  openChannel(label = "", options: { waitInMs?: number; early?: boolean } = {}): Promise<Duplex> {
    return this.session.openChannel(label, options.waitInMs, options.early);
  }

  /** Ends the stream (the device's channels see the reason) and waits for the relay socket to close. */
  async close(reason: "Normal" | "GoingAway" = "Normal", message = ""): Promise<TunnelCloseInfo> {
    this.session.close(reason, message);
    const info = await this.ended;
    await this.relay.whenClosed();
    return info;
  }

  /**
   * As net.Socket's: an unref'd stream does not keep the process alive (its relay socket is
   * unref'd; the tunnel's own timers never hold the process). Streams start ref'd.
   */
  ref(): this {
    this.relay.ref();
    return this;
  }

  unref(): this {
    this.relay.unref();
    return this;
  }

  /** Resolves when the stream has ended, for whatever reason. */
  whenClosed(): Promise<TunnelCloseInfo> {
    return this.ended;
  }
}
