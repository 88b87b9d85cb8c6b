export {
  DeviceStreamListener,
  type DeviceStreamListenerOptions,
  IncomingStream,
  type MethodHost,
  type StreamDecision,
  type StreamRequest,
} from "./listener";
export { type StreamOffer, parseOffer } from "./offer";
