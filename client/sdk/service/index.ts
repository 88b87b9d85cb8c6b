export { API_VERSION, StreamsClient, type StreamsClientOptions, type TunnelTuning } from "./client";
export { type ParsedConnectionString, parseConnectionString } from "./connectionString";
export { type SasKeyCredential, type StreamsCredential } from "./credentials";
export { DeviceStream, type DeviceStreamInfo } from "./deviceStream";
export { ChannelPool, type ChannelPoolOptions } from "./pool";
export { DeviceHttpAgent, type DeviceHttpAgentOptions, type DeviceTarget } from "./http/agent";
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
