// @ferry/contract: what the control plane and the agent agree on beyond the wire. Pure data and checks, no I/O.
//   task-payload   the signed body of a task, versioned, with its exact parser
//   phases         the actions and phases every driver speaks
//   target-kind    a kind's descriptor: config schema, capabilities, sticker location, image selection
//   kinds/         one descriptor per target kind
//   images         pinned image references and the registry-credential key
//   result-codes   every code a task can end with, retryable or terminal
export * from "./config-schema.js";
export * from "./images.js";
export * from "./phases.js";
export * from "./result-codes.js";
export * from "./target-kind.js";
export * from "./task-payload.js";
export * from "./kinds/index.js";
