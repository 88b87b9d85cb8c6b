// device-streams on Azure, keyless: every service is reached with Entra tokens of one
// user-assigned identity; no access key, connection string or SAS key is created,
// read or output here. Sizing is by parameters; see docs/deploy.md for the numbers.
targetScope = 'subscription'

@description('azd environment name; names the resource group and seeds resource names.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Azure region for all resources (it must offer Flex Consumption).')
@minLength(1)
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create; empty means rg-<environmentName>.')
param resourceGroupName string = ''

@description('Node.js major version of the function app. Node 20 reached end of life in April 2026.')
param nodeVersion string = '22'

@description('Always-ready instances for the HTTP group (at least 1: cold starts must not land on WebSocket handshakes).')
@minValue(1)
@maxValue(1000)
param alwaysReadyInstances int = 1

@description('Always-ready instances for the housekeeping timer; 0 (default) runs it on demand instances. See docs/deploy.md, Cost.')
@minValue(0)
@maxValue(1000)
param housekeepingAlwaysReady int = 0

@description('Maximum Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per function instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Web PubSub SKU: Free_F1 (1 unit, 20 connections, trials), Standard_S1, Premium_P1 or Premium_P2.')
@allowed([
  'Free_F1'
  'Standard_S1'
  'Premium_P1'
  'Premium_P2'
])
param webPubSubSku string = 'Standard_S1'

// ARM accepts only these unit counts per SKU (Free_F1: 1; Standard_S1 and Premium_P1: 1-10, 20,
// 30 ... 100; Premium_P2: 100, 200 ... 1000; see docs/deploy.md), and Bicep cannot relate two
// parameters without the experimental `assert`: so one parameter per SKU family, each with
// exactly the values ARM takes, and webPubSubCapacity picks by SKU.
@description('Web PubSub units for Standard_S1 and Premium_P1: 1,000 connections (500 concurrent streams) each. See docs/deploy.md.')
@allowed([
  1
  2
  3
  4
  5
  6
  7
  8
  9
  10
  20
  30
  40
  50
  60
  70
  80
  90
  100
])
param webPubSubUnits int = 1

@description('Web PubSub units for Premium_P2 (ignored by the other SKUs).')
@allowed([
  100
  200
  300
  400
  500
  600
  700
  800
  900
  1000
])
param webPubSubP2Units int = 100

@description('Web PubSub hub carrying the streams.')
param webPubSubHub string = 'streams'

@description('Name of an existing IoT hub to use; empty creates a new hub.')
param existingIotHubName string = ''

@description('Resource group of the existing IoT hub (same subscription); required with existingIotHubName.')
param existingIotHubResourceGroup string = ''

@description('SKU of a new IoT hub (ignored with an existing hub).')
@allowed([
  'F1'
  'S1'
  'S2'
  'S3'
])
param iotHubSku string = 'S1'

// ARM's unit limits per IoT Hub SKU: F1 exactly 1, S1 and S2 up to 200, S3 up to 10.
@description('Units of a new S1 or S2 IoT hub (ignored with an existing hub, F1 and S3). S1: about 40 direct-method calls/s per unit.')
@minValue(1)
@maxValue(200)
param iotHubUnits int = 1

@description('Units of a new S3 IoT hub (ignored by the other SKUs).')
@minValue(1)
@maxValue(10)
param iotHubS3Units int = 1

@description('Table holding stream records.')
param tableName string = 'streams'

@description('Microsoft Entra tenant of the backends that call the control plane.')
param entraTenantId string = tenant().tenantId

@description('Audience (client id or App ID URI) of the backend app registration callers get tokens for; comma-separated for several.')
@minLength(1)
param entraAudience string

@description('ENTRA_ROLES: which app role may use which devices and streams. The default lets holders of the app role Streams.Operator (assigned in Entra, nobody by default) use every device, module and stream.')
@minLength(1)
param entraRoles array = [
  {
    role: 'Streams.Operator'
    devices: [
      '*'
      '*/*'
    ]
    streams: [
      '*'
    ]
  }
]

@description('Audiences the event handler accepts on Web PubSub\'s token, comma-separated; empty means every entraAudience value. Web PubSub requests its token for the first one.')
param relayEventsAudience string = ''

@description('Object id of the deployer (azd fills AZURE_PRINCIPAL_ID): granted IoT Hub Registry Contributor on the hub, for the live suite and device registration. Empty grants nothing.')
param principalId string = ''

@description('Principal type of principalId: User, or ServicePrincipal when a pipeline deploys.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Versionless Key Vault secret URI holding SERVICE_SAS_POLICIES; empty disables SAS policies.')
param sasPoliciesSecretUri string = ''

@description('App log level: debug, info, warn or error; empty keeps the app default.')
param logLevel string = ''

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var createIotHub = empty(existingIotHubName)
var iotHubName = createIotHub ? '${abbrs.devicesIotHubs}${resourceToken}' : existingIotHubName
// An existing hub is looked up in its own group; without one the lookup would search the new,
// empty group and fail obscurely. ARM has no fail(): the failing int() stops template validation
// with this sentence in the error (ARM evaluates only the branch of if() that is taken). The
// preprovision hook refuses the same case earlier, with the command that fixes it.
var iotHubResourceGroup = createIotHub ? rg.name : (empty(existingIotHubResourceGroup) ? string(int('existingIotHubResourceGroup (EXISTING_IOTHUB_RESOURCE_GROUP) is required with existingIotHubName ${existingIotHubName}')) : existingIotHubResourceGroup)
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var webPubSubCapacity = webPubSubSku == 'Free_F1' ? 1 : (webPubSubSku == 'Premium_P2' ? webPubSubP2Units : webPubSubUnits)
var iotHubCapacity = iotHubSku == 'F1' ? 1 : (iotHubSku == 'S3' ? iotHubS3Units : iotHubUnits)
// Every audience the backend app registration may appear under (v1 App ID URI, v2 client id):
// the app accepts them all, Web PubSub asks for the first.
var relayAudienceList = map(filter(split(empty(relayEventsAudience) ? entraAudience : relayEventsAudience, ','), a => !empty(trim(a))), a => trim(a))
var relayAudiences = join(relayAudienceList, ',')
var relayTokenAudience = relayAudienceList[0]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? '${abbrs.resourcesResourceGroups}${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module appIdentity 'app/identity.bicep' = {
  name: 'app-identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

// Web PubSub's own identity: it only proves "this call comes from our Web PubSub" to
// the event handler, and holds no role anywhere.
module relayIdentity 'app/identity.bicep' = {
  name: 'relay-identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}relay-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    principalId: appIdentity.outputs.principalId
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    tableName: tableName
    deploymentContainerName: 'app-package-${resourceToken}'
    principalId: appIdentity.outputs.principalId
  }
}

module webPubSub 'app/webpubsub.bicep' = {
  name: 'webpubsub'
  scope: rg
  params: {
    name: '${abbrs.signalRServiceWebPubSub}${resourceToken}'
    location: location
    tags: tags
    sku: webPubSubSku
    units: webPubSubCapacity
    relayIdentityId: relayIdentity.outputs.id
    principalId: appIdentity.outputs.principalId
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module iotHub 'app/iothub.bicep' = if (createIotHub) {
  name: 'iothub'
  scope: rg
  params: {
    name: iotHubName
    location: location
    tags: tags
    sku: iotHubSku
    units: iotHubCapacity
  }
}

module iotHubAccess 'app/iothub-access.bicep' = {
  name: 'iothub-access-${resourceToken}'
  scope: resourceGroup(iotHubResourceGroup)
  params: {
    iotHubName: iotHubName
    principalId: appIdentity.outputs.principalId
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    diagnosticSettingName: 'device-streams-${environmentName}'
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
  dependsOn: [
    iotHub
  ]
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    nodeVersion: nodeVersion
    alwaysReadyInstances: alwaysReadyInstances
    housekeepingAlwaysReady: housekeepingAlwaysReady
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    identityId: appIdentity.outputs.id
    identityClientId: appIdentity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    tablesEndpoint: storage.outputs.tableEndpoint
    tableName: tableName
    webPubSubHostName: webPubSub.outputs.hostName
    webPubSubHub: webPubSubHub
    iotHubHostName: iotHubAccess.outputs.hostName
    entraTenantId: entraTenantId
    entraAudience: entraAudience
    entraRoles: string(entraRoles)
    relayEventsPrincipalId: relayIdentity.outputs.principalId
    relayEventsAudience: relayAudiences
    sasPoliciesSecretUri: sasPoliciesSecretUri
    logLevel: logLevel
  }
}

module hub 'app/webpubsub-hub.bicep' = {
  name: 'webpubsub-hub'
  scope: rg
  params: {
    webPubSubName: webPubSub.outputs.name
    hubName: webPubSubHub
    functionAppHostName: api.outputs.hostName
    relayEventsAudience: relayTokenAudience
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output CONTROL_PLANE_URL string = 'https://${api.outputs.hostName}/api'
output WEBPUBSUB_ENDPOINT string = 'https://${webPubSub.outputs.hostName}'
output WEBPUBSUB_HUB string = hub.outputs.name
output IOTHUB_HOST_NAME string = iotHubAccess.outputs.hostName
