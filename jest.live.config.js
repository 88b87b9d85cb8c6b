/**
 * `npm run test:live`: the SDK end-to-end tests against a deployment (docs/live-tests.md). The same
 * files run against the in-process stack in `npm test`; here the target comes from the
 * DEVICESTREAMS_LIVE_* variables, and the run fails at once, listing them, when they are incomplete.
 * DEVICESTREAMS_TARGET=loopback runs the live target's code against the local emulators instead.
 */
const base = require("./jest.config");

if (process.env.DEVICESTREAMS_TARGET !== "loopback") process.env.DEVICESTREAMS_TARGET = "live";

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  // The SDK suite, and the real-process one (needs ssh, scp, sshd and curl on this machine).
  testMatch: ["<rootDir>/test/sdk/streams.test.ts", "<rootDir>/test/e2e/peers.test.ts"],
  globalSetup: "<rootDir>/test/live/globalSetup.ts",
  // A real network, cold starts and 16 MB round trips: per-test deadlines are scaled too (TIME_SCALE).
  testTimeout: 300_000,
  maxWorkers: 1,
};
