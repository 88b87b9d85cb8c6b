/**
 * The stream offer: the direct method's payload from the control plane to the device agent, and the
 * agent's refusal of a version it does not speak. Both sides import this file, so the wire names
 * live in one place (docs/tunnel-protocol.md §4, "The offer and its version").
 *
 * Versioning rule: `v` is the offer's major version. Fields may be added within a major version and
 * an agent ignores fields it does not know; removing or changing the meaning of a field is a new
 * major version. An agent refuses a major version it does not speak with status 400 and
 * `{reason, code: UNSUPPORTED_OFFER_VERSION, versions}`, and joins no relay.
 */
export const OFFER_VERSION = 1;

/** The versions this code speaks (both the control plane and the agent). */
export const SUPPORTED_OFFER_VERSIONS: readonly number[] = [OFFER_VERSION];

/** `code` of an agent's answer refusing the offer's major version. */
export const UNSUPPORTED_OFFER_VERSION = "UnsupportedOfferVersion";

/**
 * The reason agents released before the code above (offer v1 only) give for any other `v`, word for
 * word; the control plane recognises it so that such an agent's refusal reads as a version mismatch.
 */
export const LEGACY_VERSION_REFUSAL = "unsupported payload version (this device speaks v 1)";

/** The device's answer refusing an offer's version, as the agent sends it. */
export interface VersionRefusal {
  reason: string;
  code: typeof UNSUPPORTED_OFFER_VERSION;
  versions: number[];
}

/**
 * Whether a device's answer refuses the offer's version, and which versions the device speaks
 * (unknown for an agent that does not list them). The answer is the device's: untrusted.
 */
export function versionRefusal(
  status: number,
  answer: unknown,
): { versions: number[] | undefined } | undefined {
  if (status !== 400 || typeof answer !== "object" || answer === null) return undefined;
  const a = answer as Record<string, unknown>;
  if (a.code === UNSUPPORTED_OFFER_VERSION) {
    const versions = Array.isArray(a.versions)
      ? a.versions.filter((v): v is number => Number.isSafeInteger(v)).slice(0, 16)
      : undefined;
    return { versions };
  }
  if (a.reason === LEGACY_VERSION_REFUSAL) return { versions: [1] };
  return undefined;
}
