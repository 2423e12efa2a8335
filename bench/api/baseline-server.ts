// The baseline of `npm run bench:api`: a bare fastify server (the version in node_modules, as Ferry uses) in its own
// process on 127.0.0.1, answering GET /single and GET /list with static JSON bodies read from files named on the
// command line: a real release response and a real 50-release list page captured from the Ferry server in the same
// run. No auth, no database: the floor that fastify, node:http and JSON serialisation set on this machine.
// Replies are objects, so fastify serialises them per request, as Ferry's routes (no response schemas) do.
import { readFileSync } from "node:fs";
import Fastify from "fastify";
import type { BaselineReady } from "./ipc.js";

const [singleFile, listFile] = process.argv.slice(2);
if (!singleFile || !listFile) throw new Error("usage: baseline-server.ts SINGLE_JSON LIST_JSON");
const single = JSON.parse(readFileSync(singleFile, "utf8")) as unknown;
const list = JSON.parse(readFileSync(listFile, "utf8")) as unknown;

const app = Fastify({ logger: false });
app.get("/single", async () => single);
app.get("/list", async () => list);
const url = await app.listen({ host: "127.0.0.1", port: 0 });
const ready: BaselineReady = { type: "ready", url, fastifyVersion: app.version };
process.send?.(ready);
process.on("disconnect", () => void app.close().then(() => process.exit(0)));
process.on("SIGTERM", () => void app.close().then(() => process.exit(0)));
