export { type RelayConnectOptions, RelayConnection, connectRelay } from "./connection";
export { RelayError, type RelayErrorCode } from "./errors";
export { type RelayUrlCheck, type RelayUrlPolicy, checkRelayUrl } from "./policy";
export { proxyAgentFor } from "./proxy";
