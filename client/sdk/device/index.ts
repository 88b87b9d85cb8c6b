export {
  DeviceStreamListener,
  type DeviceStreamListenerOptions,
  IncomingStream,
  type MethodHost,
  type RelayConnector,
  type RelayTransport,
  type StreamDecision,
  type StreamRequest,
} from "./listener";
export { type StreamOffer, parseOffer } from "./offer";
