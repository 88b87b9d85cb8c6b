/**
 * The one place that loads `jose`. jose 6 is ESM-only, and TypeScript's `module: node16` refuses a
 * static import of ESM from CommonJS (TS1479) even though Node ≥ 20.19 can require() it. Types come
 * through a resolution-mode import; the value through require(). With `module: node20` in
 * tsconfig this file can become `export * from "jose"`.
 */
import type * as Jose from "jose" with { "resolution-mode": "import" };

export type { JWTPayload, JWTVerifyGetKey } from "jose" with { "resolution-mode": "import" };

// eslint-disable-next-line @typescript-eslint/no-require-imports -- see above
export const jose = require("jose") as typeof Jose;
export type JOSEError = Jose.errors.JOSEError;
export type JWTClaimValidationFailed = Jose.errors.JWTClaimValidationFailed;
