#!/bin/sh
# azd preprovision hook: refuses, before anything is created, parameters that ARM would only
# reject halfway through a deployment, and says what to change:
#  - an existing IoT hub (EXISTING_IOTHUB_NAME) without its resource group;
#  - a region (AZURE_LOCATION) without Flex Consumption, IoT Hub or Web PubSub. The lists come
#    live from `az` (Flex Consumption keeps adding regions, so no list is kept in the templates);
#    without `az`, or when it cannot answer, the region is not checked and ARM has the last word.
set -u

say() { printf 'preprovision: %s\n' "$*" >&2; }
normalize() { tr 'A-Z' 'a-z' | tr -d ' \r'; }

if [ -n "${EXISTING_IOTHUB_NAME:-}" ] && [ -z "${EXISTING_IOTHUB_RESOURCE_GROUP:-}" ]; then
  say "EXISTING_IOTHUB_NAME is '${EXISTING_IOTHUB_NAME}' but EXISTING_IOTHUB_RESOURCE_GROUP is empty."
  say "The template looks the hub up in its resource group; name it:"
  say "  azd env set EXISTING_IOTHUB_RESOURCE_GROUP <the hub's resource group>"
  exit 1
fi

location=$(printf '%s' "${AZURE_LOCATION:-}" | normalize)
if [ -z "$location" ]; then
  say "AZURE_LOCATION is not set; region not checked."
  exit 0
fi
if ! command -v az >/dev/null 2>&1; then
  say "Azure CLI (az) not found: region '$location' not checked (docs/deploy.md, Regions)."
  exit 0
fi

missing=""
# $1: service; the rest: the az command that lists its regions, one per line.
check() {
  service=$1
  shift
  if ! regions=$(az "$@" 2>/dev/null); then
    say "could not list the regions of $service (is 'az login' done?); '$location' not checked for it."
    return 0
  fi
  if ! printf '%s\n' "$regions" | normalize | grep -qx "$location"; then
    missing="$missing $service,"
  fi
}

check "Flex Consumption" functionapp list-flexconsumption-locations --query "[].name" --output tsv
check "Web PubSub" provider show --namespace Microsoft.SignalRService \
  --query "resourceTypes[?resourceType=='WebPubSub'].locations[]" --output tsv
# An existing hub may live in any region; only a new one is created in AZURE_LOCATION.
if [ -z "${EXISTING_IOTHUB_NAME:-}" ]; then
  check "IoT Hub" provider show --namespace Microsoft.Devices \
    --query "resourceTypes[?resourceType=='IotHubs'].locations[]" --output tsv
fi

if [ -n "$missing" ]; then
  say "region '$location' does not offer:${missing%,}."
  say "device-streams needs Flex Consumption, Web PubSub and (for a new hub) IoT Hub in one region."
  say "Pick another: az functionapp list-flexconsumption-locations --output table"
  say "then: azd env set AZURE_LOCATION <region>"
  exit 1
fi
say "region '$location' offers Flex Consumption, Web PubSub and IoT Hub."
