// Writes docs/errors.md from the error catalogues (`npm run docs:errors`).
import { writeFileSync } from "node:fs";
import { renderErrorDocs } from "./error-docs.js";

writeFileSync(new URL("../docs/errors.md", import.meta.url), renderErrorDocs());
