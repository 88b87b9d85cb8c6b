/**
 * The modules behind the commands, loaded on first use. require(), not import(): these are this
 * package's own CommonJS files, and a synchronous require keeps their types and jest's module map.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
export const load = {
  service: () => require("../sdk/service") as typeof import("../sdk/service"),
  agent: () => require("./agent") as typeof import("./agent"),
  deviceClient: () => require("./deviceClient") as typeof import("./deviceClient"),
  entra: () => require("./entra") as typeof import("./entra"),
  heap: () => require("./heap") as typeof import("./heap"),
  httpFetch: () => require("./httpFetch") as typeof import("./httpFetch"),
  gateway: () => require("../gateway/server") as typeof import("../gateway/server"),
  gatewayAuth: () => require("../gateway/auth") as typeof import("../gateway/auth"),
  forward: () => require("./forward") as typeof import("./forward"),
  stdio: () => require("./stdio") as typeof import("./stdio"),
};
/* eslint-enable @typescript-eslint/no-require-imports */
