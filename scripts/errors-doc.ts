// Writes docs/errors.md from the error catalogues.
import { writeFileSync } from "node:fs";
import { renderErrorDocs } from "../control-plane/src/domain/error-docs.js";

writeFileSync(new URL("../docs/errors.md", import.meta.url), renderErrorDocs());
