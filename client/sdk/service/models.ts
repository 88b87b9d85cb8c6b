/** A stream as the control plane shows it (never its relay credentials). Times are ISO 8601. */
export interface StreamInfo {
  streamId: string;
  deviceId: string;
  moduleId?: string;
  name: string;
  state: string;
  openedBy: string;
  createdAt: string;
  acceptedAt?: string;
  establishedAt?: string;
  closedAt?: string;
  handshakeDeadline: string;
  closeCode?: string;
  closeReason?: string;
  closedBy?: string;
  bytesFromService?: number;
  bytesFromDevice?: number;
}

export interface Endpoints {
  relay: { endpoint: string; hub: string };
  iotHub: { hostName: string; methodName: string };
  apiVersions: string[];
}

export interface OperationOptions {
  abortSignal?: AbortSignal;
}

export interface OpenStreamOptions extends OperationOptions {
  /** Open the stream to this module identity of the device. */
  moduleId?: string;
  /** JSON passed to the device's callback. */
  data?: unknown;
  /** Time for the device to answer and both sides to join the relay: 5,000–60,000 ms. */
  handshakeTimeoutInMs?: number;
}

export interface ListStreamsOptions extends OperationOptions {
  state?: string;
  maxPageSize?: number;
}
