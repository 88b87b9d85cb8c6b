// Deployed into the IoT hub's own resource group, which may not be ours when an
// existing hub is used: grants the app identity keyless direct methods and sends
// the hub's diagnostics to our workspace. It never changes the hub itself.

@description('Name of the IoT hub (new or existing).')
param iotHubName string

@description('Principal (object) id of the function app identity.')
param principalId string

@description('Resource id of the Log Analytics workspace receiving diagnostics.')
param logAnalyticsId string

@description('Name of the diagnostic setting; unique per hub, so one per environment.')
param diagnosticSettingName string

@description('Object id of the person or pipeline running azd; empty grants nothing.')
param deployerPrincipalId string

@description('Principal type of the deployer.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param deployerPrincipalType string

var roles = loadJsonContent('roles.json')

resource iotHub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource dataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(iotHub.id, principalId, roles.iotHubDataContributor)
  scope: iotHub
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.iotHubDataContributor)
  }
}

// The deployer registers devices (the live suite, `dev add-device`-style registration): the
// registry, and nothing of the data plane the control plane uses.
resource deployerRegistry 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(iotHub.id, deployerPrincipalId, roles.iotHubRegistryContributor)
  scope: iotHub
  properties: {
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.iotHubRegistryContributor)
  }
}

// What streams depend on (device connections, direct methods) and nothing else: an
// existing hub's telemetry logs could dwarf this deployment's cost.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: diagnosticSettingName
  scope: iotHub
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'Connections'
        enabled: true
      }
      {
        category: 'DirectMethods'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output hostName string = iotHub.properties.hostName
