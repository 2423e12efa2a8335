// The ways an engine request fails other than at the socket (socket errors keep their errno codes: ENOENT,
// ECONNREFUSED, EACCES, ECONNRESET …, and a request that waited too long fails with ETIMEDOUT).

/** The engine answered with an error status (4xx, 5xx, or 304 "not modified" for a stop or start with nothing to do). */
export class EngineError extends Error {
  override readonly name = "EngineError";
  /** The HTTP status: 404 no such container or image, 409 conflict, 500 server error, … */
  readonly statusCode: number;

  /** `message` is the engine's own ({"message": "…"} of its answer), or a description when the answer had none. */
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

/** What the engine sent cannot be read: too large, not JSON, or not the shape asked for. */
export class EngineAnswerError extends Error {
  override readonly name = "EngineAnswerError";
  readonly code: "ENGINE_ANSWER_TOO_LARGE" | "ENGINE_LINE_TOO_LONG" | "ENGINE_BAD_JSON" | "ENGINE_BAD_ANSWER";

  constructor(code: EngineAnswerError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

/** A pull's progress reported a failure (an `error`/`errorDetail` line) after the engine had answered 200. */
export class EngineProgressError extends Error {
  override readonly name = "EngineProgressError";
}
