export { API_VERSION, StreamsClient, type StreamsClientOptions, type TunnelTuning } from "./client";
export { type ParsedConnectionString, parseConnectionString } from "./connectionString";
export { type SasKeyCredential, type StreamsCredential } from "./credentials";
export { DeviceStream, type DeviceStreamInfo } from "./deviceStream";
export { ChannelPool, type ChannelPoolOptions, type PooledChannel } from "./pool";
export { DeviceHttpAgent, type DeviceHttpAgentOptions } from "./http/agent";
export type { DeviceHttpOptions, DeviceTarget } from "./http/target";
export { createDeviceDispatcher, createDeviceFetch } from "./http/fetch";
export type { DeviceDispatcher, DeviceDispatcherOptions, DeviceFetch } from "./http/dispatcher";
export { StreamsError, isStreamsError } from "./errors";
export {
  type GatewayBaseUrl,
  type TicketOptions,
  gatewayLoginUrl,
  gatewaySecretFromText,
  issueTicket,
} from "../../gateway/ticket";
export type {
  Endpoints,
  ListStreamsOptions,
  OpenStreamOptions,
  OperationOptions,
  StreamInfo,
} from "./models";
