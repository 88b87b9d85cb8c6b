/** The OpenAPI 3.1 document, generated from the route table and its zod schemas. */
import { z } from "zod";
import type { RouteTable } from "../http/routeTypes";
import { ROUTE_PREFIX } from "../http/routeTypes";
import { API_VERSIONS, errorBody, pathParams } from "./schemas";

const schemaOf = (schema: z.ZodType, io: "input" | "output") =>
  z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" });

export function buildOpenApi(table: RouteTable, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of table.http) {
    for (const [method, doc] of Object.entries(route.docs ?? {})) {
      if (!doc) continue;
      const path = `/${ROUTE_PREFIX}/${route.route}`.replace(/\{([^}:?*]+)[^}]*\}/g, "{$1}");
      const parameters: Record<string, unknown>[] = [];
      for (const m of path.matchAll(/\{([^}]+)\}/g)) {
        const name = m[1]!;
        const known = (pathParams as Record<string, z.ZodType | undefined>)[name];
        parameters.push({
          name,
          in: "path",
          required: true,
          schema: known ? schemaOf(known, "input") : { type: "string" },
        });
      }
      if (doc.versioned) {
        parameters.push({
          name: "api-version",
          in: "query",
          required: true,
          schema: { type: "string", enum: [...API_VERSIONS] },
        });
      }
      for (const [name, field] of Object.entries(doc.query?.shape ?? {})) {
        parameters.push({
          name,
          in: "query",
          required: false,
          schema: schemaOf(field as z.ZodType, "input"),
        });
      }
      const responses: Record<string, unknown> = {};
      for (const [status, r] of Object.entries(doc.responses)) {
        responses[status] = {
          description: r.description,
          ...(r.schema ? { content: { "application/json": { schema: schemaOf(r.schema, "output") } } } : {}),
        };
      }
      responses.default = {
        description: 'Error, as `{"error":{"code","message"}}` with the code also in `x-ms-error-code`.',
        content: { "application/json": { schema: schemaOf(errorBody, "output") } },
      };
      paths[path] ??= {};
      paths[path][method.toLowerCase()] = {
        operationId: `${route.name}_${method.toLowerCase()}`,
        summary: doc.summary,
        tags: doc.tags,
        ...(doc.anonymous ? { security: [] } : {}),
        parameters,
        ...(doc.body
          ? {
              requestBody: {
                required: true,
                content: { "application/json": { schema: schemaOf(doc.body, "input") } },
              },
            }
          : {}),
        responses,
      };
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "device-streams control plane",
      version,
      description:
        "Open TCP tunnels to IoT devices by device ID. Every route but health, this document and the relay handshake needs a SAS token or an Entra ID bearer token. Device and module IDs travel in paths as the base64url encoding (RFC 4648 §5, no padding) of their UTF-8 bytes, e.g. `Demo-Device-01` as `RGVtby1EZXZpY2UtMDE`, so that no ID (`..`, `%2F`, `#`, `?`) can change a path; bodies carry them in plain text.",
    },
    servers: [{ url: "/" }],
    components: {
      securitySchemes: {
        sas: {
          type: "apiKey",
          in: "header",
          name: "Authorization",
          description: "SharedAccessSignature sr=…&sig=…&se=…&skn=…",
        },
        entra: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
      },
    },
    security: [{ sas: [] }, { entra: [] }],
    paths,
  };
}
