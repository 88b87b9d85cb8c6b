// Web PubSub relays the tunnel bytes. Entra-only (no access keys): the control plane
// mints client tokens through :generateToken with the app identity (Service Owner).
// The hub and its event handler are in webpubsub-hub.bicep, deployed once the
// function app's host name is known.

@description('Name of the Web PubSub resource.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the resource.')
param tags object

@description('Web PubSub SKU. Free_F1 allows 20 connections (10 streams) and is for trials only.')
@allowed([
  'Free_F1'
  'Standard_S1'
  'Premium_P1'
  'Premium_P2'
])
param sku string

@description('Units: 1,000 concurrent connections each, one stream uses two. Free_F1 takes 1; Standard_S1/Premium_P1 1-10, 20, 30 ... 100; Premium_P2 100, 200 ... 1000 (main.bicep picks per SKU).')
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
param units int

@description('Resource id of the user-assigned identity Web PubSub calls the event handler with.')
param relayIdentityId string

@description('Principal (object) id of the function app identity.')
param principalId string

@description('Resource id of the Log Analytics workspace receiving diagnostics.')
param logAnalyticsId string

var roles = loadJsonContent('roles.json')

resource webPubSub 'Microsoft.SignalRService/webPubSub@2024-03-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: split(sku, '_')[0]
    capacity: units
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${relayIdentityId}': {}
    }
  }
  properties: {
    disableLocalAuth: true
    disableAadAuth: false
    publicNetworkAccess: 'Enabled'
    tls: {
      clientCertEnabled: false
    }
  }
}

resource serviceOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(webPubSub.id, principalId, roles.webPubSubServiceOwner)
  scope: webPubSub
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.webPubSubServiceOwner)
  }
}

// Connections and REST/upstream calls only: MessagingLogs would write one row per
// tunnel frame, costing more in Log Analytics than the relay itself.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'device-streams'
  scope: webPubSub
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'ConnectivityLogs'
        enabled: true
      }
      {
        category: 'HttpRequestLogs'
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

output name string = webPubSub.name
output hostName string = webPubSub.properties.hostName
