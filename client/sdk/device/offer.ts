import { SUPPORTED_OFFER_VERSIONS, UNSUPPORTED_OFFER_VERSION } from "../../../common/offer";

/** The direct method's payload (`v: 1`), as the control plane sends it (common/offer.ts). */
export interface StreamOffer {
  streamId: string;
  name: string;
  data: unknown;
  relay: { url: string; token: string };
  expiresAt: string;
}

export type OfferParse =
  { ok: true; offer: StreamOffer } | { ok: false; reason: string; code?: typeof UNSUPPORTED_OFFER_VERSION };

const isString = (v: unknown): v is string => typeof v === "string" && v.length > 0;

/** Validates an untrusted payload; reasons name the field, never a value (the token is one). */
export function parseOffer(payload: unknown): OfferParse {
  if (!payload || typeof payload !== "object") return { ok: false, reason: "payload must be a JSON object" };
  const p = payload as Record<string, unknown>;
  if (!SUPPORTED_OFFER_VERSIONS.includes(p.v as number)) {
    return {
      ok: false,
      code: UNSUPPORTED_OFFER_VERSION,
      reason: `unsupported offer version; this device speaks v ${SUPPORTED_OFFER_VERSIONS.join(", ")}: update the device agent or the control plane`,
    };
  }
  const relay = p.relay as Record<string, unknown> | undefined;
  if (!isString(p.streamId)) return { ok: false, reason: "streamId missing" };
  if (!isString(p.name)) return { ok: false, reason: "name missing" };
  if (!relay || typeof relay !== "object" || !isString(relay.url) || !isString(relay.token)) {
    return { ok: false, reason: "relay.url or relay.token missing" };
  }
  if (!isString(p.expiresAt) || Number.isNaN(Date.parse(p.expiresAt))) {
    return { ok: false, reason: "expiresAt missing or not a date" };
  }
  return {
    ok: true,
    offer: {
      streamId: p.streamId,
      name: p.name,
      data: p.data ?? null,
      relay: { url: relay.url, token: relay.token },
      expiresAt: p.expiresAt,
    },
  };
}
