/**
 * The one place that loads `jose`. jose 6 is ESM-only; with `module: node20` TypeScript compiles
 * this import to require(), which Node ≥ 20.19 and 22 load natively (and jest transforms).
 */
import * as jose from "jose";

export { jose };
export type { JWTPayload, JWTVerifyGetKey } from "jose";
export type JOSEError = jose.errors.JOSEError;
export type JWTClaimValidationFailed = jose.errors.JWTClaimValidationFailed;
