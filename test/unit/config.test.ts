import { ConfigError, configSettings, loadConfig } from "../../shared/config";

const DEV_POLICY = JSON.stringify([
  { name: "service", primaryKey: Buffer.alloc(32, 7).toString("base64"), devices: ["*"], streams: ["*"] },
]);

const local = {
  SERVICE_SAS_POLICIES: DEV_POLICY,
  TABLES_CONNECTION_STRING: "UseDevelopmentStorage=true",
  WEBPUBSUB_CONNECTION_STRING: "Endpoint=http://localhost:8080;AccessKey=k;Version=1.0;",
  IOTHUB_CONNECTION_STRING: "HostName=localhost:8443;SharedAccessKeyName=service;SharedAccessKey=a2V5",
};

const azure = {
  DEPLOYMENT_MODE: "azure",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
  TABLES_ENDPOINT: "https://acct.table.core.windows.net",
  WEBPUBSUB_ENDPOINT: "https://wps.webpubsub.azure.com",
  IOTHUB_HOST_NAME: "hub.azure-devices.net",
  ENTRA_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  ENTRA_AUDIENCE: "api://device-streams",
  ENTRA_ROLES: JSON.stringify([{ role: "Streams.Operator", devices: ["*"], streams: ["*"] }]),
  RELAY_EVENTS_ALLOWED_ORIGINS: "wps.webpubsub.azure.com",
  RELAY_EVENTS_PRINCIPAL_ID: "00000000-0000-0000-0000-000000000002",
  RELAY_EVENTS_AUDIENCE: "api://device-streams-events",
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("defaults to local mode with documented defaults", () => {
    const config = loadConfig(local);
    expect(config.mode).toBe("local");
    expect(config.tables).toEqual({ tableName: "streams", connectionString: "UseDevelopmentStorage=true" });
    expect(config.iotHub.methodName).toBe("deviceStream");
    expect(config.streams).toEqual({
      maxPerDevice: 32,
      maxPerCaller: 16,
      maxDataBytes: 4096,
      maxLifetimeSeconds: 12 * 3600,
      retentionHours: 168,
      relayTokenMinutes: 2,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("accepts a complete keyless azure configuration", () => {
    const config = loadConfig(azure);
    expect(config.mode).toBe("azure");
    expect(config.webPubSub).toEqual({ hub: "streams", endpoint: "https://wps.webpubsub.azure.com" });
    expect(config.managedIdentityClientId).toBe(azure.AZURE_CLIENT_ID);
  });

  it("lists every missing local setting at once", () => {
    const problems = problemsOf({ SERVICE_SAS_POLICIES: DEV_POLICY });
    expect(problems).toHaveLength(3);
    expect(problems.join("\n")).toMatch(
      /TABLES_CONNECTION_STRING.*WEBPUBSUB_CONNECTION_STRING.*IOTHUB_CONNECTION_STRING/s,
    );
  });

  it("refuses connection strings in azure mode", () => {
    const problems = problemsOf({ ...azure, IOTHUB_CONNECTION_STRING: local.IOTHUB_CONNECTION_STRING });
    expect(problems).toEqual([
      expect.stringMatching(/^IOTHUB_CONNECTION_STRING: not allowed when DEPLOYMENT_MODE=azure/),
    ]);
  });

  it("names each invalid value", () => {
    const problems = problemsOf({
      ...local,
      STREAMS_MAX_PER_DEVICE: "0",
      TABLES_TABLE_NAME: "bad-name",
      WEBPUBSUB_CONNECTION_STRING: "nonsense",
      LOG_LEVEL: "loud",
    });
    const text = problems.join("\n");
    for (const name of [
      "STREAMS_MAX_PER_DEVICE",
      "TABLES_TABLE_NAME",
      "WEBPUBSUB_CONNECTION_STRING",
      "LOG_LEVEL",
    ]) {
      expect(text).toContain(name);
    }
  });

  it("bounds the stream limits: data to what a table string property holds, lifetime 0 = unlimited", () => {
    const streams = (extra: Record<string, string>) => loadConfig({ ...local, ...extra }).streams;
    expect(streams({ STREAMS_MAX_DATA_BYTES: "32768" }).maxDataBytes).toBe(32_768);
    expect(problemsOf({ ...local, STREAMS_MAX_DATA_BYTES: "65536" })).toEqual([
      expect.stringMatching(/^STREAMS_MAX_DATA_BYTES: .*32768/),
    ]);
    expect(streams({ STREAMS_MAX_LIFETIME_SECONDS: "0" }).maxLifetimeSeconds).toBe(0);
    expect(streams({ STREAMS_MAX_PER_DEVICE: "10" }).maxPerCaller).toBe(5);
    expect(streams({ STREAMS_MAX_PER_DEVICE: "1" }).maxPerCaller).toBe(1);
    expect(streams({ STREAMS_MAX_PER_DEVICE: "10", STREAMS_MAX_PER_CALLER: "8" }).maxPerCaller).toBe(8);
    expect(problemsOf({ ...local, STREAMS_MAX_PER_CALLER: "0" })).toEqual([
      expect.stringMatching(/^STREAMS_MAX_PER_CALLER: /),
    ]);
  });

  it("treats empty strings as unset", () => {
    expect(loadConfig({ ...local, STREAMS_MAX_PER_DEVICE: "" }).streams.maxPerDevice).toBe(32);
  });

  it("describes every setting for the infra cross-check", () => {
    const azureRequired = configSettings()
      .filter((s) => s.requiredIn.includes("azure"))
      .map((s) => s.name);
    expect(azureRequired.sort()).toEqual(
      Object.keys(azure)
        .filter((k) => k !== "DEPLOYMENT_MODE")
        .sort(),
    );
  });
});
