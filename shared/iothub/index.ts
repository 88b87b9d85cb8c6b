export { PortAwareHttp, createIotHubClients, type IotHubClients, type IotHubConnection } from "./clients";
export {
  DirectMethodError,
  IotHubDirectMethodInvoker,
  toDirectMethodError,
  type DirectMethodErrorKind,
  type DirectMethodInvoker,
  type DirectMethodRequest,
  type DirectMethodResult,
  type DirectMethodTarget,
} from "./directMethod";
export { parseIotHubErrorBody, type IotHubErrorInfo } from "./errorBody";
export { DIRECT_METHOD_LIMITS, checkDirectMethodParams } from "./limits";
