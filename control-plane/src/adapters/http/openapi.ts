// The OpenAPI description, built from the routes themselves as they are registered: each route's JSON schemas
// (params, querystring, body), summary and required role become an operation. It cannot drift from what the server
// does; openapi.test.ts checks that every API route is described with a summary.
import type { FastifyInstance, RouteOptions } from "fastify";
import { ERROR_CATALOGUE } from "../../domain/error-catalogue.js";

declare module "fastify" {
  interface FastifySchema {
    /** One line describing the operation, for the OpenAPI description. */
    summary?: string;
  }
}

interface Operation {
  summary: string;
  operationId: string;
  "x-ferry-role"?: string;
  security?: Array<Record<string, string[]>>;
  parameters?: unknown[];
  requestBody?: unknown;
  responses: Record<string, unknown>;
}

export class OpenApiCollector {
  private readonly paths: Record<string, Record<string, Operation>> = {};

  attach(app: FastifyInstance): void {
    app.addHook("onRoute", (route: RouteOptions) => {
      if (!route.url.startsWith("/api/") || route.url.endsWith("/openapi.json")) return;
      const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== "HEAD");
      const path = route.url.replace(/:([A-Za-z]+)/g, "{$1}");
      const schema = (route.schema ?? {}) as { summary?: string; params?: SchemaObject; querystring?: SchemaObject; body?: unknown };
      const role = (route.config as { role?: string } | undefined)?.role;
      for (const m of methods) {
        const op: Operation = {
          summary: schema.summary ?? "",
          operationId: `${m.toLowerCase()}${path.replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+(.)?/g, (_s, c: string | undefined) => (c ? c.toUpperCase() : ""))}`,
          responses: {
            default: { description: "An error; see the codes below and docs/errors.md", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
          },
        };
        op.responses[m === "POST" ? "201" : m === "DELETE" ? "204" : "200"] = { description: "Success" };
        if (role) {
          op["x-ferry-role"] = role;
          op.security = [{ bearer: [] }];
        }
        const params = [
          ...Object.entries(schema.params?.properties ?? {}).map(([name, s]) => ({ name, in: "path", required: true, schema: s })),
          ...Object.entries(schema.querystring?.properties ?? {}).map(([name, s]) => ({ name, in: "query", required: false, schema: s })),
        ];
        if (params.length) op.parameters = params;
        if (schema.body) op.requestBody = { required: true, content: { "application/json": { schema: schema.body } } };
        if ((route.config)?.idempotent) {
          op.parameters = [...(op.parameters ?? []), { name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", maxLength: 255 } }];
        }
        (this.paths[path] ??= {})[m.toLowerCase()] = op;
      }
    });
  }

  document(version: string): Record<string, unknown> {
    return {
      openapi: "3.1.0",
      info: { title: "Ferry control plane API", version, description: "Release orchestration for container estates that do not run on Kubernetes." },
      servers: [{ url: "/" }],
      paths: this.paths,
      components: {
        securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A Ferry API token (ferry_…)" } },
        schemas: {
          Error: {
            type: "object",
            required: ["error", "requestId"],
            properties: {
              error: {
                type: "object",
                required: ["code", "message"],
                properties: { code: { type: "string", enum: Object.keys(ERROR_CATALOGUE) }, message: { type: "string" }, details: { type: "object" } },
              },
              requestId: { type: "string" },
            },
          },
        },
      },
    };
  }
}

interface SchemaObject {
  properties?: Record<string, unknown>;
}
