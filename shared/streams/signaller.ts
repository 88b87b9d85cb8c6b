/**
 * The port through which the control plane reaches a device: an IoT Hub direct method. The
 * production implementation is shared/iothub's invoker; this is the shape the service needs.
 */
export interface SignalTarget {
  deviceId: string;
  moduleId?: string;
}

export interface SignalRequest {
  methodName: string;
  payload: unknown;
  responseTimeoutInSeconds: number;
  connectTimeoutInSeconds?: number;
}

export interface DeviceSignaller {
  invoke(
    target: SignalTarget,
    request: SignalRequest,
    options?: { abortSignal?: AbortSignal },
  ): Promise<{ status: number; payload: unknown }>;
}
