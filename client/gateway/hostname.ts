/**
 * Host labels of the gateway: which device a request is for is chosen by the host name
 * `<label>.<baseDomain>`, one label so that a `*.<baseDomain>` wildcard certificate covers it.
 *
 * Device IDs cannot be carried in a label as they are: IDs are case-sensitive while host names are
 * not (browsers lower-case them), and IDs hold characters a label cannot. So the label is a hash of
 * the exact target (device, module, stream name) and is never decoded: the gateway learns the target
 * from the signed ticket or session that comes with the request and only checks that its label is
 * the request's (docs/gateway.md, "Host labels").
 */
import { createHash } from "node:crypto";
import type { DeviceTarget } from "../sdk/service/http/agent";

/** Bits of SHA-256 kept: 160, so finding two targets with one label is far out of reach. */
const HASH_BYTES = 20;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
/** A letter first (never a digit-only label), then 32 base32 characters: 33 characters in all. */
const LABEL_PREFIX = "d";
const LABEL = /^d[a-z2-7]{32}$/;
/** A Host header longer than a DNS name (253) plus a port is not one of ours; never parsed. */
const MAX_HOST_LENGTH = 260;

/** RFC 4648 base32, lower case, no padding. */
function base32(bytes: Uint8Array): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31];
  return out;
}

/**
 * The host label of a target: `d` + base32 of the first 160 bits of SHA-256 over the exact target.
 * `[a-z2-7]`, 33 characters, never `xn--`, never a hyphen at either end; `Demo-Device-01` and
 * `demo-device-01` get different labels. The hashed text is JSON of the three fields (module `null`
 * when absent), so no two targets serialise alike whatever characters their IDs hold.
 */
export function labelFor(target: DeviceTarget): string {
  const canonical = JSON.stringify([
    "devicestream-gateway-label-v1",
    target.deviceId,
    target.moduleId ?? null,
    target.streamName,
  ]);
  const digest = createHash("sha256").update(canonical, "utf8").digest().subarray(0, HASH_BYTES);
  return LABEL_PREFIX + base32(digest);
}

/** Whether `text` has the shape of a label from `labelFor` (it says nothing of which target). */
export function isLabel(text: string): boolean {
  return LABEL.test(text);
}

/** `baseDomain` as compared: lower case, without a trailing dot. */
export function normalizeBaseDomain(baseDomain: string): string {
  return baseDomain.toLowerCase().replace(/\.$/, "");
}

/**
 * The label of a Host header that is exactly `<label>.<baseDomain>` (any port, any letter case),
 * else undefined: a name of another shape, another domain, a deeper subdomain, an IP literal or a
 * trailing dot (another origin to a browser) is not one of the gateway's hosts (404).
 */
export function parseHost(hostHeader: string, baseDomain: string): string | undefined {
  if (typeof hostHeader !== "string" || hostHeader.length > MAX_HOST_LENGTH) return undefined;
  const match = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(hostHeader);
  if (!match) return undefined;
  const name = match[1]!.toLowerCase();
  const suffix = "." + normalizeBaseDomain(baseDomain);
  if (suffix === "." || !name.endsWith(suffix)) return undefined;
  const label = name.slice(0, -suffix.length);
  return isLabel(label) ? label : undefined;
}
