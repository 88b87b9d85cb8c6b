// The control plane: a Flex Consumption function app running as the user-assigned
// identity, with identity-based host storage and deployment storage, and app
// settings named exactly as shared/config.ts reads them (cross-checked in npm test).

@description('Name of the function app.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region.')
param location string

@description('Tags applied to the plan and the app (the app also gets azd-service-name).')
param tags object

@description('Node.js major version of the Flex Consumption runtime. Node 20 reached end of life in April 2026.')
param nodeVersion string

@description('Always-ready instances for the HTTP scale group: at least 1, so cold starts never land on WebSocket handshakes.')
@minValue(1)
@maxValue(1000)
param alwaysReadyInstances int

@description('Always-ready instances for the housekeeping timer (function:housekeeping); 0 leaves it on demand. See docs/deploy.md, Cost.')
@minValue(0)
@maxValue(1000)
param housekeepingAlwaysReady int

@description('Upper bound of instances the plan scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (DefaultAzureCredential and the host read it).')
@minLength(1)
param identityClientId string

@description('Name of the storage account used for host storage and deployment.')
param storageAccountName string

@description('Blob endpoint of that account, ending with a slash.')
param blobEndpoint string

@description('Blob container the app package is deployed to.')
param deploymentContainerName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Table service endpoint, https://<account>.table.core.windows.net.')
@minLength(1)
param tablesEndpoint string

@description('Name of the stream table.')
param tableName string

@description('Host name of the Web PubSub resource.')
@minLength(1)
param webPubSubHostName string

@description('Web PubSub hub carrying the streams.')
param webPubSubHub string

@description('Host name of the IoT hub, <hub>.azure-devices.net.')
@minLength(1)
param iotHubHostName string

@description('Microsoft Entra tenant of the callers.')
@minLength(1)
param entraTenantId string

@description('Accepted token audiences for backends (the backend app registration), comma-separated.')
@minLength(1)
param entraAudience string

@description('ENTRA_ROLES: JSON array of { role, devices, streams, actions? }; required in azure mode.')
@minLength(1)
param entraRoles string

@description('Object id of the identity Web PubSub calls the event handler with.')
@minLength(1)
param relayEventsPrincipalId string

@description('Accepted audiences of the token Web PubSub sends to the event handler, comma-separated.')
@minLength(1)
param relayEventsAudience string

@description('Key Vault secret URI (versionless) holding SERVICE_SAS_POLICIES; empty disables SAS policies.')
param sasPoliciesSecretUri string

@description('Log level: debug, info, warn or error; empty keeps the app default.')
param logLevel string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        // On Flex the timer scales apart from the HTTP group; an always-ready entry for it is
        // listed only when asked for, so the default deploys exactly as before.
        alwaysReady: concat(
          [
            {
              name: 'http'
              instanceCount: alwaysReadyInstances
            }
          ],
          housekeepingAlwaysReady > 0 ? [{ name: 'function:housekeeping', instanceCount: housekeepingAlwaysReady }] : []
        )
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: nodeVersion
      }
    }
  }
}

// Empty values count as unset for the app (shared/config.ts), so optional settings
// are always listed and the check sees every name this template can set; required
// ones come from @minLength(1) params or literals, which the check also verifies.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__accountName: storage.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    DEPLOYMENT_MODE: 'azure'
    AZURE_CLIENT_ID: identityClientId
    TABLES_ENDPOINT: tablesEndpoint
    TABLES_TABLE_NAME: tableName
    WEBPUBSUB_ENDPOINT: 'https://${webPubSubHostName}'
    WEBPUBSUB_HUB: webPubSubHub
    IOTHUB_HOST_NAME: iotHubHostName
    ENTRA_TENANT_ID: entraTenantId
    ENTRA_AUDIENCE: entraAudience
    ENTRA_ROLES: entraRoles
    RELAY_EVENTS_PRINCIPAL_ID: relayEventsPrincipalId
    RELAY_EVENTS_AUDIENCE: relayEventsAudience
    RELAY_EVENTS_ALLOWED_ORIGINS: webPubSubHostName
    // The `sr` service SAS tokens must carry: this app's own host, so an IoT Hub token never passes.
    SERVICE_SAS_RESOURCE: site.properties.defaultHostName
    // Keys never live in app settings: only a Key Vault reference, resolved by the
    // platform with keyVaultReferenceIdentity (needs Key Vault Secrets User on the vault).
    SERVICE_SAS_POLICIES: empty(sasPoliciesSecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${sasPoliciesSecretUri})'
    LOG_LEVEL: logLevel
    // Backstop for the routes' own body limits (shared/http/body.ts; the largest is 1 MiB, relay
    // events): the host refuses anything larger before the worker. Its effect on Flex Consumption
    // is unverified (docs/deploy.md).
    FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: '2097152'
  }
}

output name string = site.name
output hostName string = site.properties.defaultHostName
