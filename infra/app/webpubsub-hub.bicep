// The hub that carries the streams, with the control plane as its event handler.
// Web PubSub authenticates to the handler with an Entra token of its own identity
// (auth type ManagedIdentity); the control plane pins that identity's object id
// (RELAY_EVENTS_PRINCIPAL_ID) and the audience below (RELAY_EVENTS_AUDIENCE).

@description('Name of the existing Web PubSub resource.')
param webPubSubName string

@description('Hub name; the app reads the same value from WEBPUBSUB_HUB.')
param hubName string

@description('Default host name of the function app that serves the relay-events route.')
param functionAppHostName string

@description('Audience (Entra application id or App ID URI) Web PubSub requests its event-handler token for.')
@minLength(1)
param relayEventsAudience string

resource webPubSub 'Microsoft.SignalRService/webPubSub@2024-03-01' existing = {
  name: webPubSubName
}

resource hub 'Microsoft.SignalRService/webPubSub/hubs@2024-03-01' = {
  parent: webPubSub
  name: hubName
  properties: {
    anonymousConnectPolicy: 'deny'
    eventHandlers: [
      {
        // The control plane's relay-events route (host.json prefix + route table); checked in npm test.
        urlTemplate: 'https://${functionAppHostName}/api/relay/events'
        // connect admits the single-use token, disconnected ends the stream; connected is
        // not sent (the control plane does not use it, and every event is a billed call).
        // The one user event is `report`: a side's byte counts as it closes. Data frames
        // are group messages and never go upstream.
        systemEvents: [
          'connect'
          'disconnected'
        ]
        userEventPattern: 'report'
        auth: {
          type: 'ManagedIdentity'
          managedIdentity: {
            resource: relayEventsAudience
          }
        }
      }
    ]
  }
}

output name string = hub.name
