import type { IdentityRecord } from "../registry";

/** The JSON shapes azure-iothub's Device, Module and Twin classes read. */

const NEVER = "0001-01-01T00:00:00Z";

function authentication(record: IdentityRecord) {
  return {
    symmetricKey: { primaryKey: record.primaryKey, secondaryKey: record.secondaryKey },
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    type: "sas",
  };
}

export function renderIdentity(record: IdentityRecord, connected: boolean): Record<string, unknown> {
  const common = {
    deviceId: record.deviceId,
    generationId: record.generationId,
    etag: record.etag,
    connectionState: connected ? "Connected" : "Disconnected",
    connectionStateUpdatedTime: NEVER,
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: 0,
    authentication: authentication(record),
  };
  if (record.moduleId !== undefined) {
    return { moduleId: record.moduleId, ...common, managedBy: record.managedBy ?? null };
  }
  return {
    ...common,
    status: record.status,
    statusReason: record.statusReason ?? null,
    statusUpdatedTime: record.statusUpdatedTime,
    capabilities: { iotEdge: false },
  };
}

/** A twin without properties: the emulator implements no twin updates. */
export function renderTwin(record: IdentityRecord, connected: boolean): Record<string, unknown> {
  const metadata = { $lastUpdated: record.lastUpdatedTime };
  return {
    deviceId: record.deviceId,
    ...(record.moduleId === undefined ? {} : { moduleId: record.moduleId }),
    etag: "AAAAAAAAAAE=",
    deviceEtag: record.etag,
    status: record.status,
    statusUpdateTime: record.statusUpdatedTime,
    connectionState: connected ? "Connected" : "Disconnected",
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: 0,
    authenticationType: "sas",
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    version: 1,
    properties: {
      desired: { $metadata: metadata, $version: 1 },
      reported: { $metadata: metadata, $version: 1 },
    },
    ...(record.moduleId === undefined ? { capabilities: { iotEdge: false } } : {}),
  };
}
