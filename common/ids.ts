/**
 * The one transport for device and module IDs in REST paths (docs/decisions.md §2): every
 * `{deviceId}` / `{moduleId}` segment is the base64url encoding (RFC 4648 §5, no padding) of the
 * ID's UTF-8 bytes. Base64url has no character that any percent-decoding step changes and no `.`,
 * so no ID can change a path, whatever the host decodes before routing. Shared by the control plane
 * and the clients; it must import nothing from either.
 */

/**
 * IoT Hub's ID alphabet for devices and modules: case-sensitive, up to 128 ASCII letters, digits and
 * `- : . + % _ # * ? ! ( ) , = @ ; $ '` (learn.microsoft.com, IoT Hub Event Grid schema: deviceId
 * and moduleId; also ../shared/docs/iothub-protocol.md).
 */
export const ID_SPECIAL_CHARACTERS = "-:.+%_#*?!(),=@;$'";
export const MAX_ID_LENGTH = 128;
const LEGAL_ID = new RegExp(
  `^[A-Za-z0-9${ID_SPECIAL_CHARACTERS.replace(/[\]\\^-]/g, "\\$&")}]{1,${MAX_ID_LENGTH}}$`,
);

export const ID_RULE = `1-${MAX_ID_LENGTH} ASCII letters, digits or ${[...ID_SPECIAL_CHARACTERS].join(" ")}`;

export function isLegalId(id: string): boolean {
  return LEGAL_ID.test(id);
}

/** The path segment that carries `id`. Any string encodes; the control plane judges legality. */
export function encodeIdSegment(id: string): string {
  return Buffer.from(id, "utf8").toString("base64url");
}

/** The alphabet and length of a segment that can carry a legal ID (up to ceil(128 * 4 / 3) characters). */
export const ID_SEGMENT_PATTERN = /^[A-Za-z0-9_-]{1,171}$/;

export const NOT_CANONICAL =
  "must be the canonical base64url encoding (RFC 4648 §5, no padding) of the ID, e.g. 'RGVtby1EZXZpY2UtMDE' for 'Demo-Device-01'";

export type DecodedId = { ok: true; id: string } | { ok: false; problem: string };

/**
 * The ID a path segment carries, or why it carries none. Only the canonical spelling is accepted:
 * no padding, no `+` or `/`, and zero unused bits in the last character, so each ID has exactly one
 * path and a cache, an authorization rule or a log can never see two spellings of one ID.
 */
export function decodeIdSegment(segment: string): DecodedId {
  if (!ID_SEGMENT_PATTERN.test(segment)) return { ok: false, problem: NOT_CANONICAL };
  const bytes = Buffer.from(segment, "base64url");
  // Buffer's decoder is lenient (it drops a dangling character and stray bits); the round trip is not.
  if (bytes.toString("base64url") !== segment) return { ok: false, problem: NOT_CANONICAL };
  // Legal IDs are ASCII, so latin1 maps each byte to itself and any byte above 0x7f fails the test.
  const id = bytes.toString("latin1");
  if (!isLegalId(id)) return { ok: false, problem: `must decode to ${ID_RULE}` };
  return { ok: true, id };
}

/**
 * Stream names as the control plane accepts them (shared/api/schemas.ts `streamName`): 1-64
 * letters, digits, `.`, `_`, `:` or `-`, starting with a letter or digit.
 */
const LEGAL_STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

export const STREAM_NAME_RULE = "1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit";

export function isLegalStreamName(name: string): boolean {
  return LEGAL_STREAM_NAME.test(name);
}
