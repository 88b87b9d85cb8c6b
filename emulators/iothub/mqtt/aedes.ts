/**
 * The one place that loads `aedes`. aedes 1.x is ESM-only, and TypeScript's `module: node16`
 * refuses a static import of ESM from CommonJS (TS1479) even though Node >= 20.19 can require() it.
 * Types come through a resolution-mode import; the value through require(). (Jest needs aedes in
 * its transformIgnorePatterns allow-list for the same reason.)
 */
import type * as AedesModule from "aedes" with { "resolution-mode": "import" };

export type { AuthenticateError, Client as MqttClient, PublishPacket, Subscription } from "aedes" with {
  "resolution-mode": "import",
};

// eslint-disable-next-line @typescript-eslint/no-require-imports -- see above
export const { Aedes } = require("aedes") as typeof AedesModule;
export type Aedes = AedesModule.Aedes;
