// Renders docs/errors.md from the two catalogues, so the documentation cannot drift from the code
// (error-docs.test.ts fails when it does; `npm run docs:errors` rewrites it).
import { WIRE_ERROR_DESCRIPTIONS, WireErrorCodes } from "@ferry/proto";
import { status } from "@grpc/grpc-js";
import { ERROR_CATALOGUE } from "./error-catalogue.js";

export function renderErrorDocs(): string {
  const grpcName = (s: number): string => (status as unknown as Record<number, string>)[s] ?? String(s);
  const lines = [
    "# Error codes",
    "",
    "Every refusal carries a stable code. Scripts and agents match on the code; the message is for people.",
    "This page is generated from the code (`npm run docs:errors`); a test fails when they differ.",
    "",
    "## JSON API",
    "",
    'Errors are returned as `{"error": {"code", "message", "details"?}, "requestId"}` with the HTTP status below.',
    "",
    "| code | HTTP | meaning |",
    "|---|---|---|",
    ...Object.entries(ERROR_CATALOGUE).map(([code, spec]) => `| \`${code}\` | ${spec.http} | ${spec.description} |`),
    "",
    "## Agent protocol (gRPC)",
    "",
    "The code travels in the `ferry-error-code` trailer and as the prefix of the status details (`CODE: message`);",
    "`ferry-retry-after-ms` carries a retry delay where one applies.",
    "",
    "| code | gRPC status | meaning |",
    "|---|---|---|",
    ...Object.entries(WireErrorCodes).map(
      ([code, s]) => `| \`${code}\` | ${grpcName(s)} | ${WIRE_ERROR_DESCRIPTIONS[code as keyof typeof WireErrorCodes]} |`,
    ),
    "",
  ];
  return lines.join("\n");
}
