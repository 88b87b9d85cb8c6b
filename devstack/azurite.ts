import { mkdir } from "node:fs/promises";
import type { IncomingMessage, Server } from "node:http";
import { join } from "node:path";
import { isAddressInUse, PortInUseError } from "./ports";

/** Azurite's well-known development account (documented, public; not a secret). */
export const DEV_ACCOUNT_NAME = "devstoreaccount1";
export const DEV_ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteTableOptions {
  host?: string;
  /** 0 picks a free port. Default 10002, Azurite's own. */
  port?: number;
  /** Directory for the table database; in memory when absent. */
  persistDir?: string;
  /**
   * Serve HTTPS with these PEM files and accept Entra ID bearer tokens (`--oauth basic`): Azurite
   * refuses Bearer over http. Basic OAuth only decodes the token (v1 issuer, storage audience).
   */
  keyless?: { certPath: string; keyPath: string };
  /** Sees every request before Azurite does: the keyless stack counts how each one was signed. */
  onRequest?: (req: IncomingMessage) => void;
}

export interface AzuriteTable {
  /** Account URL, e.g. `http://127.0.0.1:10002/devstoreaccount1`. */
  readonly tableEndpoint: string;
  readonly connectionString: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The slice of Azurite's (untyped) TableServer this module relies on. */
interface TableServerLike {
  readonly httpServer: Server;
  start(): Promise<void>;
  close(): Promise<void>;
  /** Closes the metadata and account stores; `close()` only reaches it after a successful start. */
  afterClose(): Promise<void>;
}
type TableConfigurationCtor = new (...args: unknown[]) => object;
type TableServerCtor = new (config: object) => TableServerLike;

/**
 * Loads Azurite's table server lazily: it is large, and only `npm start` and integration tests need
 * it. These deep paths are Azurite's programmatic API (what its own `azurite-table` bin uses).
 */
function loadAzurite(): { TableServer: TableServerCtor; TableConfiguration: TableConfigurationCtor } {
  /* eslint-disable @typescript-eslint/no-require-imports -- untyped CommonJS internals, loaded on demand */
  const server = require("azurite/dist/src/table/TableServer") as { default: TableServerCtor };
  const config = require("azurite/dist/src/table/TableConfiguration") as { default: TableConfigurationCtor };
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { TableServer: server.default, TableConfiguration: config.default };
}

/**
 * Starts Azurite's table service in this process. Its debug and access logs stay off (Azurite's
 * logger is a no-op unless configured), and no telemetry is initialised: that lives in its CLI.
 */
export async function startAzuriteTable(options: AzuriteTableOptions = {}): Promise<AzuriteTable> {
  const host = options.host ?? "127.0.0.1";
  const requestedPort = options.port ?? 10002;
  const { TableServer, TableConfiguration } = loadAzurite();
  if (options.persistDir) await mkdir(options.persistDir, { recursive: true });
  const config = new TableConfiguration(
    host,
    requestedPort,
    undefined, // keep-alive timeout: Azurite's default
    options.persistDir ? join(options.persistDir, "__azurite_db_table__.json") : "__azurite_db_table__.json",
    false, // debug log
    false, // access log
    undefined, // access log stream
    undefined, // debug log file
    true, // loose: accept headers and parameters Azurite does not implement
    true, // skip the API-version check, so newer @azure/data-tables releases keep working
    options.keyless?.certPath ?? "", // cert
    options.keyless?.keyPath ?? "", // key
    "", // cert password
    options.keyless ? "basic" : undefined, // OAuth
    false, // product-style URLs stay available
    !options.persistDir, // in-memory persistence
  );
  const server = new TableServer(config);
  if (options.onRequest) server.httpServer.prependListener("request", options.onRequest);
  try {
    await server.start();
  } catch (err) {
    await server.afterClose().catch(() => undefined);
    throw isAddressInUse(err) ? new PortInUseError(host, requestedPort, "Azurite table service") : err;
  }
  const address = server.httpServer.address();
  if (address === null || typeof address === "string")
    throw new Error("Azurite table service: no TCP address");
  const scheme = options.keyless ? "https" : "http";
  const tableEndpoint = `${scheme}://${host.includes(":") ? `[${host}]` : host}:${address.port}/${DEV_ACCOUNT_NAME}`;

  let closing: Promise<void> | undefined;
  return {
    tableEndpoint,
    port: address.port,
    connectionString:
      `DefaultEndpointsProtocol=${scheme};AccountName=${DEV_ACCOUNT_NAME};AccountKey=${DEV_ACCOUNT_KEY};` +
      `TableEndpoint=${tableEndpoint};`,
    close() {
      closing ??= (async () => {
        // Azurite's close() stops the server without waiting for its sockets; wait for them here.
        const closed = new Promise<void>((resolve) => server.httpServer.once("close", () => resolve()));
        await server.close();
        await closed;
      })();
      return closing;
    },
  };
}
