export { type RelayConnectOptions, RelayConnection, connectRelay } from "./connection";
export { RelayError, type RelayErrorCode } from "./errors";
export {
  type RelayHostPolicy,
  type RelayPolicy,
  type RelayUrlCheck,
  type RelayUrlPolicy,
  checkRelayUrl,
  relayUrlPolicyProblem,
} from "./policy";
export { proxyAgentFor } from "./proxy";
