// Renders docs/errors.md from the catalogues in the code, so the documentation cannot drift from them
// (error-docs.test.ts fails when it does; `npm run docs:errors` rewrites it). It lives with the scripts because it
// reads every layer at once: the domain's codes and categories, the HTTP adapter's status table and the wire codes.
import { status } from "@grpc/grpc-js";
import { RESULT_CODES } from "@ferry/contract";
import { WIRE_ERROR_DESCRIPTIONS, WireErrorCodes } from "@ferry/proto";
import { ERROR_CATALOGUE, type ErrorCode } from "../control-plane/src/domain/error-catalogue.js";
import { ERROR_CATEGORIES, type ErrorCategory } from "../control-plane/src/domain/error-category.js";
import { HTTP_STATUS_BY_CATEGORY, httpStatusOf } from "../control-plane/src/adapters/http/error-status.js";

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
    "Each code belongs to a category that says what kind of refusal it is, whatever the transport; the HTTP status",
    "follows from the category (one table in the HTTP adapter), except where HTTP has a finer status of its own (431).",
    "",
    "| category | HTTP | meaning |",
    "|---|---|---|",
    ...Object.entries(ERROR_CATEGORIES).map(([c, meaning]) => `| \`${c}\` | ${HTTP_STATUS_BY_CATEGORY[c as ErrorCategory]} | ${meaning} |`),
    "",
    "| code | category | HTTP | meaning |",
    "|---|---|---|---|",
    ...Object.entries(ERROR_CATALOGUE).map(
      ([code, spec]) => `| \`${code}\` | ${spec.category} | ${httpStatusOf(code as ErrorCode)} | ${spec.description} |`,
    ),
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
    "## Task results",
    "",
    "A task that does not succeed ends with one of these codes, in the task's `code` (API, CLI, evidence) and, for a",
    "refusal, in the agent's `TaskAck.refusal_code`. The catalogue is `RESULT_CODES` in `@ferry/contract`, shared by the",
    "agent, its drivers and the control plane.",
    "",
    "- **outcome**: `refused` — the agent would not run the task, nothing was touched; `failed` — the target said no (a",
    "  check failed, an image is bad) and what ran before was put back; `errored` — a system fault (the agent, the",
    "  engine, a restore that failed), the target may need a look.",
    "- **retryable**: whether running the same task again, unchanged, may succeed. Automation retries only these.",
    "",
    "| code | outcome | retryable | raised by | meaning |",
    "|---|---|---|---|---|",
    ...Object.entries(RESULT_CODES).map(
      ([code, info]) => `| \`${code}\` | ${info.outcome} | ${info.retryable ? "yes" : "no"} | ${info.source} | ${info.description} |`,
    ),
    "",
  ];
  return lines.join("\n");
}
