// JSON-schema validators for requests: one Ajv instance per request part, because the parts need different type
// rules. Path and query parameters arrive as text, so "limit=10" must become the number 10. Bodies arrive as JSON
// with real types, and must keep them: fastify's default coerces everywhere, which turned {"name": 123} into the
// environment "123". Unknown fields are refused, never silently dropped (removeAdditional off), so a misspelt
// field is reported instead of ignored.
import { Ajv, type ValidateFunction } from "ajv";
import type { FastifyInstance, FastifySchema } from "fastify";

const common = { useDefaults: true, removeAdditional: false, allErrors: false, addUsedSchema: false, strict: false } as const;

export function registerSchemaValidators(app: FastifyInstance): void {
  const bodies = new Ajv({ ...common, coerceTypes: false });
  const parameters = new Ajv({ ...common, coerceTypes: true });
  app.setValidatorCompiler(({ schema, httpPart }: { schema: FastifySchema; httpPart?: string }): ValidateFunction => {
    const ajv = httpPart === "body" ? bodies : parameters;
    return ajv.compile(schema as object);
  });
}
