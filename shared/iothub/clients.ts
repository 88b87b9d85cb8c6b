import { Agent } from "node:https";
import type { ClientRequest } from "node:http";
import type { TokenCredential } from "@azure/core-auth";
import { Amqp, Client, ConnectionString, Registry, SharedAccessSignature } from "azure-iothub";
import { Http, type HttpCallback, type HttpMethod } from "azure-iothub/dist/common-http/http";
import { RestApiClient } from "azure-iothub/dist/common-http/rest_api_client";
import type { X509 } from "azure-iothub/dist/common-core/authorization";
import { anHourFromNow } from "azure-iot-common";

/**
 * Local: a service connection string whose HostName may carry a port ("localhost:8443") plus an
 * optional CA (PEM) to trust. Azure: the hub's host name and a TokenCredential (no keys).
 */
export type IotHubConnection =
  { connectionString: string; ca?: string } | { hostName: string; credential: TokenCredential; ca?: string };

export interface IotHubClients {
  client: Client;
  registry?: Registry;
}

// azure-iothub reports its own name in User-Agent; keep the same shape so hub logs stay familiar.
const USER_AGENT = "azure-iothub/device-streams";

function splitAuthority(authority: string): { hostname: string; port?: number } {
  let url: URL;
  try {
    url = new URL(`https://${authority}`);
  } catch {
    throw new Error(`IoT Hub HostName '${authority}' is not a valid host[:port].`);
  }
  if (url.pathname !== "/" || url.search || url.username) {
    throw new Error(`IoT Hub HostName '${authority}' must be a bare host[:port].`);
  }
  // URL keeps IPv6 brackets, which https.request does not accept as a host.
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return url.port ? { hostname, port: Number(url.port) } : { hostname };
}

/**
 * azure-iothub's Http builder puts the configured host (and so any ":port") into `host`, which DNS
 * then fails on. It does honour a `port` request option: split the authority here and pass it on.
 * The SAS resource (`sr`) keeps the full "host:port", which is what the emulator checks.
 */
export class PortAwareHttp extends Http {
  override buildRequest(
    method: HttpMethod,
    path: string,
    httpHeaders: { [key: string]: string | string[] | number },
    host: string | { socketPath: string },
    options: X509 | { port?: number } | HttpCallback,
    done?: HttpCallback,
  ): ClientRequest {
    if (typeof host !== "string") return super.buildRequest(method, path, httpHeaders, host, options, done);
    const callback = typeof options === "function" ? options : done;
    const { hostname, port } = splitAuthority(host);
    const requestOptions = port === undefined ? {} : { port };
    return super.buildRequest(method, path, httpHeaders, hostname, requestOptions, callback);
  }
}

/** What azure-iothub's transports read from their config; keyName is the SAS policy, if any. */
interface TransportConfig {
  host: string;
  keyName?: string;
  sharedAccessSignature?: ReturnType<typeof SharedAccessSignature.create>;
  tokenCredential?: TokenCredential;
  tokenScope?: string;
}

/**
 * Both modes go through the public `new Client(transport, restApiClient)` / `new Registry(config,
 * restApiClient)` so the port-aware builder and the CA apply to either.
 */
function build(config: TransportConfig, ca: string | undefined): IotHubClients {
  splitAuthority(config.host);
  const clientRest = new RestApiClient(config, USER_AGENT, new PortAwareHttp());
  const registryRest = new RestApiClient(config, USER_AGENT, new PortAwareHttp());
  // The AMQP transport is only used by C2D and feedback APIs we do not call; constructing it opens nothing.
  const client = new Client(new Amqp(config), clientRest);
  const registry = new Registry(config, registryRest);
  // Both constructors call setOptions({http:{agent}}) and replace earlier options, so set ours afterwards.
  const agent = new Agent({ keepAlive: true });
  for (const rest of [clientRest, registryRest]) rest.setOptions({ http: { agent }, ...(ca ? { ca } : {}) });
  return { client, registry };
}

function fromConnectionString(connectionString: string, ca: string | undefined): IotHubClients {
  let parsed: { HostName?: string; SharedAccessKeyName?: string; SharedAccessKey?: string };
  try {
    parsed = ConnectionString.parse(connectionString);
  } catch {
    throw new Error(
      "The IoT Hub connection string is malformed: expected HostName=...;SharedAccessKeyName=...;SharedAccessKey=...",
    );
  }
  const { HostName: host, SharedAccessKeyName: keyName, SharedAccessKey: key } = parsed;
  if (!host || !keyName || !key) {
    throw new Error("The IoT Hub connection string needs HostName, SharedAccessKeyName and SharedAccessKey.");
  }
  splitAuthority(host);
  // An object (not a string) so RestApiClient re-signs it before every call instead of expiring after an hour.
  const sharedAccessSignature = SharedAccessSignature.create(host, keyName, key, anHourFromNow());
  return build({ host, keyName, sharedAccessSignature }, ca);
}

export function createIotHubClients(conn: IotHubConnection): IotHubClients {
  if ("connectionString" in conn) return fromConnectionString(conn.connectionString, conn.ca);
  if (!conn.hostName) throw new Error("An IoT Hub host name is required.");
  // The scope azure-iothub's own fromTokenCredential uses; the role needed is "IoT Hub Data Contributor".
  return build(
    {
      host: conn.hostName,
      tokenCredential: conn.credential,
      tokenScope: "https://iothubs.azure.net/.default",
    },
    conn.ca,
  );
}
