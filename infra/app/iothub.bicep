// A new IoT hub, created only when no existing hub is given. Direct methods need a
// Standard tier (F1 is the free Standard edition: one per subscription).

@description('Name of the IoT hub.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the hub.')
param tags object

@description('IoT Hub SKU; direct methods need F1 or S1-S3. Each S1 unit allows about 40 direct-method calls/s under 4 KB.')
@allowed([
  'F1'
  'S1'
  'S2'
  'S3'
])
param sku string

@description('IoT Hub units: F1 exactly 1, S1/S2 up to 200, S3 up to 10 (main.bicep picks per SKU).')
@minValue(1)
@maxValue(200)
param units int

resource iotHub 'Microsoft.Devices/IotHubs@2023-06-30' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    capacity: units
  }
  properties: {
    // Hub-level SAS policies off: the control plane uses Entra (IoT Hub Data Contributor).
    // Devices keep their own per-device keys or certificates.
    disableLocalAuth: true
    minTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

output name string = iotHub.name
