/**
 * HELLO negotiation (docs/tunnel-protocol.md §4): the HELLO this side sends, and what it makes of
 * the peer's: the version both speak and the features both offered.
 */
import { FEATURES, type Frame, type HelloFields, PROTOCOL_VERSION } from "./codec";
import type { ResolvedOptions, TunnelRole, TunnelSessionOptions } from "./options";

/**
 * The FEATURES bits a side offers. Each option that turns one off speaks like the release before
 * that feature (the table in §4), so it turns off the features released after it as well.
 */
export function offeredFeatures(options: TunnelSessionOptions): number {
  if (options.earlyData === false) return 0;
  if (options.implicitAccept === false) return FEATURES.earlyData;
  if (options.closeAnswer === false) return FEATURES.earlyData | FEATURES.implicitAccept;
  return FEATURES.earlyData | FEATURES.implicitAccept | FEATURES.closeAnswer;
}

export function helloFrame(
  o: ResolvedOptions,
  minVersion: number,
  maxVersion: number,
  features: number,
): Frame {
  return {
    features,
    type: "hello",
    minVersion,
    maxVersion,
    streamWindowBytes: o.streamWindowBytes,
    streamWindowMessages: o.streamWindowMessages,
    channelWindowBytes: o.channelWindowBytes,
    channelWindowMessages: o.channelWindowMessages,
    maxChannels: o.maxChannels,
    maxDataPayload: o.maxDataPayload,
  };
}

export type HelloOutcome =
  /** `answer`: the device's HELLO in reply (the service sends none). */
  | { ok: true; features: number; answer?: { version: number; features: number } }
  | { ok: false; message: string };

/** The device picks the highest common version; the service checks the device's choice. */
export function negotiate(role: TunnelRole, hello: HelloFields, offeredFeatures: number): HelloOutcome {
  const features = offeredFeatures & (hello.features ?? 0);
  if (role === "device") {
    const version = Math.min(hello.maxVersion, PROTOCOL_VERSION);
    if (version < Math.max(hello.minVersion, 1)) {
      return {
        ok: false,
        message: `the service offers versions ${hello.minVersion}..${hello.maxVersion}; this device speaks 1..${PROTOCOL_VERSION}`,
      };
    }
    return { ok: true, features, answer: { version, features } };
  }
  if (hello.minVersion !== hello.maxVersion || hello.maxVersion > PROTOCOL_VERSION) {
    return {
      ok: false,
      message: `the device chose versions ${hello.minVersion}..${hello.maxVersion}; this service speaks 1..${PROTOCOL_VERSION}`,
    };
  }
  return { ok: true, features };
}
