// The engine client: every call the drivers make, against the real Docker Engine and a real registry on 127.0.0.1
// (scripts/test-env.sh starts the engine), and against a small fake engine on a unix socket for what a real one will
// not do on demand (answers too large, not JSON, cut short, slow; an error line in a pull).
//
// Without an engine the real-engine tests skip loudly; under CI=true a missing engine fails them.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";

import { buildTestImage, dockerEngine } from "../../../../../test/helpers/docker.js";
import { freePort } from "../../../../../test/helpers/net.js";
import { startRegistry, type TestRegistry } from "../../../../../test/helpers/registry.js";
import { engineSuite } from "../../../../../test/helpers/engine-suite.js";
import { engineMessage, engineStatus, isEngineUnreachable } from "../errors.js";
import { pullImage } from "../pull.js";
import { EngineAnswerError, EngineClient, EngineError, EngineProgressError, registryAuthHeader } from "./client.js";
import { LogDemuxer } from "./stream.js";
import type { PullEvent } from "./types.js";

const SUITE = "Docker Engine client tests";
const suite = await engineSuite(SUITE);
const canRun = (t: TestContext): boolean => suite.canRun(t);

async function drain(progress: AsyncIterable<PullEvent>): Promise<PullEvent[]> {
  const out: PullEvent[] = [];
  for await (const e of progress) out.push(e);
  return out;
}

async function rejectsWith<T extends Error>(p: Promise<unknown>, type: new (...a: never[]) => T): Promise<T> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${type.name}, it resolved`);
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<NodeJS.ErrnoException> {
  try {
    await p;
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, code, String(err));
    return err as NodeJS.ErrnoException;
  }
  assert.fail(`expected an error with code ${code}, it resolved`);
}

const RUN = `ferry-ec-${randomBytes(3).toString("hex")}`;

describe("EngineClient against the real engine", { concurrency: false }, () => {
  let socketPath: string;
  let docker: EngineClient;
  let registry: TestRegistry;

  before(async () => {
    if (!suite.runnable) return;
    socketPath = (await dockerEngine()).socketPath;
    docker = new EngineClient({ socketPath });
    registry = await startRegistry();
  });

  after(async () => {
    if (!suite.runnable || !docker) return;
    for (const c of await docker.listContainers({ all: true, filters: { name: [RUN] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    for (const img of await docker.listImages()) {
      if ((img.RepoDigests ?? []).some((d) => d.startsWith(`${registry.host}/`))) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
    }
    await registry?.stop();
  });

  it("pings and reads the version", async (t) => {
    if (!canRun(t)) return;
    assert.equal(await docker.ping(), "OK");
    const v = await docker.version();
    assert.match(v.Version, /^\d+\.\d+/);
    assert.match(v.ApiVersion, /^1\.\d+$/);
  });

  it("reaches the engine through a given http.Agent (as the ssh driver's channels do)", async (t) => {
    if (!canRun(t)) return;
    const agent = new http.Agent({ keepAlive: false });
    let opened = 0;
    (agent as unknown as { createConnection: unknown }).createConnection = (_opts: unknown, cb: (err: Error | null, s?: unknown) => void) => {
      opened++;
      const s = connect(socketPath);
      s.once("connect", () => cb(null, s));
      s.once("error", (err) => cb(err));
      return undefined;
    };
    const viaAgent = new EngineClient({ agent });
    assert.equal(await viaAgent.ping(), "OK");
    assert.deepEqual(await viaAgent.listContainers({ all: true, filters: { name: [`${RUN}-none-such`] } }), []);
    assert.equal(opened, 2);
  });

  it("pulls by digest with progress, inspects and lists the image; an unknown digest fails", async (t) => {
    if (!canRun(t)) return;
    const img = await buildTestImage({ registry: registry.host, repository: `${RUN}/pull`, tag: "v1", version: "1.0.0", port: await freePort(), socketPath });
    const events = await drain(await docker.pull({ fromImage: img.repository, tag: img.digest }));
    assert.ok(events.some((e) => e.status?.startsWith("Status: Downloaded newer image")), JSON.stringify(events));
    assert.ok(events.some((e) => e.status === "Pull complete"), JSON.stringify(events));
    const inspected = await docker.getImage(img.pinned).inspect();
    assert.ok(inspected.RepoDigests?.includes(img.pinned));
    assert.match(inspected.Id, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(inspected.Config?.Healthcheck, undefined);
    const listed = await docker.listImages();
    assert.ok(listed.some((i) => i.Id === inspected.Id && (i.RepoDigests ?? []).includes(img.pinned)));

    const again = await drain(await docker.pull({ fromImage: img.repository, tag: img.digest }));
    assert.ok(again.some((e) => e.status?.startsWith("Status: Image is up to date")), JSON.stringify(again));

    const missing = `sha256:${"0".repeat(64)}`;
    const err = await docker
      .pull({ fromImage: img.repository, tag: missing })
      .then(drain)
      .then(
        () => assert.fail("pulling an unknown digest succeeded"),
        (e: unknown) => e as Error,
      );
    // Depending on when the engine finds out, an error answer (404) or an error line in the progress.
    assert.ok(err instanceof EngineError || err instanceof EngineProgressError, String(err));
    assert.match(engineMessage(err), /manifest unknown|not found/i);

    const gone = await rejectsWith(docker.getImage(`${img.repository}@${missing}`).inspect(), EngineError);
    assert.equal(gone.statusCode, 404);
    assert.match(gone.message, /no such image/i);
  });

  it("sends registry credentials in X-Registry-Auth: refused without them, pulled with them", async (t) => {
    if (!canRun(t)) return;
    const secured = await startRegistry({ auth: "basic" });
    t.after(() => secured.stop());
    const user = secured.users[0]!;
    const img = await buildTestImage({ registry: secured.host, repository: `${RUN}/private`, tag: "1", version: "1.0.0", port: await freePort(), socketPath, auth: user });
    const anonymous = await docker.pull({ fromImage: img.repository, tag: img.digest }).then(drain).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    assert.ok(anonymous, "an anonymous pull from a registry with basic auth failed");
    assert.match(engineMessage(anonymous), /auth|denied|unauthorized/i);
    const wrong = await docker.pull({ fromImage: img.repository, tag: img.digest, auth: { username: user.username, password: "wrong", serveraddress: secured.host } }).then(drain).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    assert.ok(wrong, "a pull with a wrong password failed");
    const events = await drain(await docker.pull({ fromImage: img.repository, tag: img.digest, auth: { username: user.username, password: user.password, serveraddress: secured.host } }));
    assert.ok(events.some((e) => e.status?.startsWith("Status: Downloaded newer image")), JSON.stringify(events));
    assert.ok((await docker.getImage(img.pinned).inspect()).RepoDigests?.includes(img.pinned));
  });

  it("creates, starts, inspects, logs, renames, updates, stops, lists and removes a container; events carry its exit code", async (t) => {
    if (!canRun(t)) return;
    const img = await buildTestImage({ registry: registry.host, repository: `${RUN}/life`, tag: "v1", version: "1.0.0", port: await freePort(), socketPath, keepLocal: true });
    const name = `${RUN}-life`;
    const created = await docker.createContainer({
      name,
      Image: img.pinned,
      Cmd: ["sh", "-c", "trap 'exit 7' TERM; echo to-stdout; echo to-stderr >&2; sleep 60 & wait $!"],
      Env: ["A=1", "B=two words"],
      Labels: { "ferry.test": RUN, "ferry.kind": "life" },
      HostConfig: { NetworkMode: "host", RestartPolicy: { Name: "no" } },
    });
    assert.match(created.id, /^[0-9a-f]{64}$/);
    let info = await created.inspect();
    assert.equal(info.Name, `/${name}`);
    assert.equal(info.Config.Image, img.pinned);
    assert.deepEqual(info.Config.Labels, { "ferry.test": RUN, "ferry.kind": "life", "test.ferry.version": "1.0.0" });
    assert.ok(info.Config.Env?.includes("B=two words"));
    assert.equal(info.HostConfig.NetworkMode, "host");
    assert.equal(info.State.Status, "created");
    assert.equal(info.State.Running, false);

    const sameName = await rejectsWith(docker.createContainer({ name, Image: img.pinned }), EngineError);
    assert.equal(sameName.statusCode, 409);
    assert.match(sameName.message, /already in use/);

    await created.start();
    const again = await rejectsWith(created.start(), EngineError);
    assert.equal(again.statusCode, 304, "starting a running container is 304, which the drivers treat as done");
    info = await created.inspect();
    assert.equal(info.State.Running, true);
    assert.equal(info.RestartCount, 0);
    assert.ok(Date.parse(info.State.StartedAt) > 0);

    // Both streams, demultiplexed.
    let logs = "";
    for (let i = 0; i < 50 && !/to-stderr/.test(logs); i++) {
      logs = await created.logs({ tail: 10 });
      if (!/to-stderr/.test(logs)) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(logs.split("\n").filter(Boolean).sort().join(","), "to-stderr,to-stdout");
    assert.equal(await created.logs({ tail: 10, stderr: false }), "to-stdout\n");

    const byName = await docker.listContainers({ filters: { name: [name] } });
    assert.deepEqual(byName.map((c) => c.Id), [created.id]);
    assert.deepEqual(byName[0]!.Names, [`/${name}`]);
    assert.equal(byName[0]!.Labels["ferry.kind"], "life");
    assert.equal(typeof byName[0]!.Created, "number");
    assert.deepEqual((await docker.listContainers({ all: true, filters: { label: ["ferry.kind=life", `ferry.test=${RUN}`] } })).map((c) => c.Id), [created.id]);
    assert.deepEqual(await docker.listContainers({ all: true, filters: { label: [`ferry.test=${RUN}`, "ferry.kind=other"] } }), []);

    await created.rename({ name: `${name}-renamed` });
    assert.equal((await docker.getContainer(`${name}-renamed`).inspect()).Id, created.id);
    await created.update({ RestartPolicy: { Name: "unless-stopped" } });
    assert.equal((await created.inspect()).HostConfig.RestartPolicy?.Name, "unless-stopped");

    const since = Date.now() - 1000;
    await created.stop({ t: 5 });
    info = await created.inspect();
    assert.equal(info.State.Running, false);
    assert.equal(info.State.ExitCode, 7);
    const stopped = await rejectsWith(created.stop({ t: 1 }), EngineError);
    assert.equal(stopped.statusCode, 304);

    const events = await docker.events({ since: (since / 1000).toFixed(3), until: (Date.now() / 1000).toFixed(3), filters: { container: [created.id], type: ["container"], event: ["die"] } });
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0]!.Action, "die");
    assert.equal(events[0]!.Actor?.Attributes?.["exitCode"], "7");

    await created.remove({ force: true });
    const gone = await rejectsWith(created.inspect(), EngineError);
    assert.equal(gone.statusCode, 404);
    assert.equal(engineStatus(gone), 404);
    assert.match(engineMessage(gone), /^No such container: /);
    const removedAgain = await rejectsWith(created.remove({ force: true }), EngineError);
    assert.equal(removedAgain.statusCode, 404);
    assert.equal((await rejectsWith(docker.getContainer(`${RUN}-none-such`).rename({ name: "x" }), EngineError)).statusCode, 404);
  });

});

// ---------------------------------------------------------------------------------------------------------------
// A fake engine: a node:http server on a unix socket in a temp dir, answering as each test tells it.

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

interface FakeEngine {
  socketPath: string;
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }>;
  handle: Handler;
  close(): Promise<void>;
}

async function fakeEngine(): Promise<FakeEngine> {
  const dir = mkdtempSync(join(tmpdir(), "ferry-fake-engine-"));
  const socketPath = join(dir, "docker.sock");
  const sockets = new Set<Socket>();
  const fake: FakeEngine = {
    socketPath,
    requests: [],
    handle: (_req, res) => res.writeHead(500).end('{"message":"no handler"}'),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      fake.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      fake.handle(req, res, body);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return fake;
}

const json = (res: http.ServerResponse, status: number, value: unknown) => res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(value));

describe("EngineClient against a fake engine", () => {
  let fake: FakeEngine;

  before(async () => {
    fake = await fakeEngine();
  });
  after(() => fake.close());

  it("a socket with no engine fails with its errno code, which the drivers read as unreachable", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-engine-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const err = await rejectsWithCode(new EngineClient({ socketPath: join(dir, "none.sock") }).ping(), "ENOENT");
    assert.ok(isEngineUnreachable(err));
  });

  it("an error answer becomes an EngineError with the engine's status and message", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath });
    fake.handle = (_req, res) => json(res, 404, { message: "No such container: web" });
    const e404 = await rejectsWith(client.getContainer("web").inspect(), EngineError);
    assert.equal(e404.statusCode, 404);
    assert.equal(e404.message, "No such container: web");
    assert.equal(engineStatus(e404), 404);
    assert.equal(engineMessage(e404), "No such container: web");
    assert.equal(isEngineUnreachable(e404), false);

    fake.handle = (_req, res) => res.writeHead(500, { "Content-Type": "text/plain" }).end("driver failed\n  programming external connectivity");
    const e500 = await rejectsWith(client.getContainer("web").start(), EngineError);
    assert.equal(e500.statusCode, 500);
    assert.equal(e500.message, "driver failed programming external connectivity");

    fake.handle = (_req, res) => res.writeHead(304).end();
    const e304 = await rejectsWith(client.getContainer("web").stop({ t: 1 }), EngineError);
    assert.equal(e304.statusCode, 304);
    assert.match(e304.message, /HTTP 304 Not Modified/);

    // A huge error body: its start is the message; nothing else is buffered.
    fake.handle = (_req, res) => res.writeHead(409).end("x".repeat(2_000_000));
    const big = await rejectsWith(client.getContainer("web").rename({ name: "x" }), EngineError);
    assert.equal(big.statusCode, 409);
    assert.ok(big.message.length <= 201);
  });

  it("sends the requests the drivers make as the engine expects them", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath });
    fake.requests.length = 0;
    fake.handle = (req, res) => {
      if (req.url?.startsWith("/containers/create")) return json(res, 201, { Id: "abc123", Warnings: [] });
      if (req.url?.startsWith("/containers/json")) return json(res, 200, []);
      if (req.url?.includes("/logs")) return res.writeHead(200).end();
      res.writeHead(204).end();
    };
    const c = await client.createContainer({ name: "web", Image: "r:5000/a/b@sha256:00", Labels: { a: "b" }, HostConfig: { NetworkMode: "host" } });
    assert.equal(c.id, "abc123");
    await c.start();
    await c.stop({ t: 10 });
    await c.rename({ name: "web.ferry-old-abc" });
    await c.update({ RestartPolicy: { Name: "unless-stopped" } });
    await c.remove({ force: true });
    await client.listContainers({ all: true, filters: { label: ["com.docker.compose.project=p"] } });
    await c.logs({ tail: 20 });
    const seen = fake.requests.map((r) => `${r.method} ${decodeURIComponent(r.url)}`);
    assert.deepEqual(seen, [
      "POST /containers/create?name=web",
      "POST /containers/abc123/start",
      "POST /containers/abc123/stop?t=10",
      "POST /containers/abc123/rename?name=web.ferry-old-abc",
      "POST /containers/abc123/update",
      "DELETE /containers/abc123?force=true",
      'GET /containers/json?all=true&filters={"label":["com.docker.compose.project=p"]}',
      "GET /containers/abc123/logs?stdout=true&stderr=true&tail=20&follow=false",
    ]);
    const create = fake.requests[0]!;
    assert.equal(create.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(create.body.toString()), { Image: "r:5000/a/b@sha256:00", Labels: { a: "b" }, HostConfig: { NetworkMode: "host" } });
    assert.deepEqual(JSON.parse(fake.requests[4]!.body.toString()), { RestartPolicy: { Name: "unless-stopped" } });
    assert.equal(fake.requests[1]!.body.length, 0, "a start sends no body");
    assert.equal(fake.requests[1]!.headers["content-type"], undefined);
  });

  it("a pull sends X-Registry-Auth only with credentials, as base64url JSON; its progress streams line by line", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath });
    fake.requests.length = 0;
    fake.handle = (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      // Lines split across writes, a blank line and a CRLF on the way.
      res.write('{"status":"Pulling from a/b","id":"sha256:00"}\n{"status":"Downl');
      setTimeout(() => {
        res.write('oading","id":"0123456789ab","progressDetail":{"current":5,"total":10}}\r\n\n');
        res.end('{"status":"Status: Downloaded newer image for r:5000/a/b@sha256:00"}');
      }, 20);
    };
    const events = await drain(await client.pull({ fromImage: "r:5000/a/b", tag: "sha256:00" }));
    assert.deepEqual(events.map((e) => e.status), ["Pulling from a/b", "Downloading", "Status: Downloaded newer image for r:5000/a/b@sha256:00"]);
    assert.deepEqual(events[1]!.progressDetail, { current: 5, total: 10 });
    assert.equal(fake.requests[0]!.method, "POST");
    assert.equal(decodeURIComponent(fake.requests[0]!.url), "/images/create?fromImage=r:5000/a/b&tag=sha256:00");
    assert.equal(fake.requests[0]!.headers["x-registry-auth"], undefined);
    assert.equal(fake.requests[0]!.body.length, 0);

    const auth = { username: "ci", password: "p?>>?/+", serveraddress: "r:5000" };
    await drain(await client.pull({ fromImage: "r:5000/a/b", tag: "sha256:00", auth }));
    const header = fake.requests[1]!.headers["x-registry-auth"];
    assert.equal(header, registryAuthHeader(auth));
    assert.doesNotMatch(String(header), /[+/]/);
    assert.deepEqual(JSON.parse(Buffer.from(String(header), "base64url").toString()), auth);
  });

  it("an error line mid-pull fails the pull (EngineProgressError), and pullImage reports it as IMAGE_PULL_FAILED / DIGEST_MISMATCH", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath });
    let message = "toomanyrequests: rate limited";
    fake.handle = (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write('{"status":"Pulling from a/b","id":"sha256:00"}\n');
      res.write(`${JSON.stringify({ errorDetail: { message }, error: message })}\n`);
      // What a real engine never does after an error line; the client must not read on.
      res.end('{"status":"Status: Downloaded newer image for r:5000/a/b@sha256:00"}\n');
    };
    const seen: PullEvent[] = [];
    const err = await rejectsWith(
      (async () => {
        for await (const e of await client.pull({ fromImage: "r:5000/a/b", tag: "sha256:00" })) seen.push(e);
      })(),
      EngineProgressError,
    );
    assert.equal(err.message, message);
    assert.deepEqual(seen.map((e) => e.status), ["Pulling from a/b"]);

    const pin = { component: "web", repository: "r:5000/a/b", digest: `sha256:${"a".repeat(64)}`, ref: `r:5000/a/b@sha256:${"a".repeat(64)}` };
    const lines: string[] = [];
    await assert.rejects(pullImage(client, pin, undefined, new AbortController().signal, (l) => lines.push(l)), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, "IMAGE_PULL_FAILED");
      assert.match(e.message ?? "", /rate limited/);
      return true;
    });
    message = "filesystem layer verification failed for digest sha256:aa";
    await assert.rejects(pullImage(client, pin, undefined, new AbortController().signal, () => undefined), { code: "DIGEST_MISMATCH" });
    assert.ok(lines.includes("pull: Pulling from a/b sha256:00"), lines.join("\n"));
  });

  it("a pull's progress that is not JSON, or a line over the limit, fails it with a clear error", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath, maxLineBytes: 1024 });
    fake.handle = (_req, res) => res.writeHead(200).end('{"status":"ok"}\n<html>proxy error</html>\n');
    const bad = await rejectsWith(drain(await client.pull({ fromImage: "a" })), EngineAnswerError);
    assert.equal(bad.code, "ENGINE_BAD_JSON");
    assert.match(bad.message, /not JSON: <html>proxy error<\/html>/);

    fake.handle = (_req, res) => {
      res.writeHead(200);
      // A line that never ends: the client stops at the limit instead of buffering it.
      const chunk = "x".repeat(512);
      let n = 0;
      const more = () => {
        if (n++ < 100 && !res.destroyed) res.write(chunk, () => setImmediate(more));
      };
      more();
    };
    const long = await rejectsWith(drain(await client.pull({ fromImage: "a" })), EngineAnswerError);
    assert.equal(long.code, "ENGINE_LINE_TOO_LONG");

    fake.handle = (_req, res) => res.writeHead(200).end("[1]\n");
    assert.equal((await rejectsWith(drain(await client.pull({ fromImage: "a" })), EngineAnswerError)).code, "ENGINE_BAD_ANSWER");
  });

  it("a JSON answer over the limit is refused, declared or not, and so is one that is not JSON or not the shape asked for", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath, maxJsonBytes: 1000 });
    fake.handle = (_req, res) => {
      const body = JSON.stringify([{ Id: "x".repeat(2000) }]);
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(body)) }).end(body);
    };
    const declared = await rejectsWith(client.listContainers(), EngineAnswerError);
    assert.equal(declared.code, "ENGINE_ANSWER_TOO_LARGE");
    assert.match(declared.message, /at most 1000/);

    fake.handle = (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write("[");
      for (let i = 0; i < 50; i++) res.write(`${JSON.stringify({ Id: "y".repeat(100) })},`);
      res.end("{}]");
    };
    const chunked = await rejectsWith(client.listContainers(), EngineAnswerError);
    assert.equal(chunked.code, "ENGINE_ANSWER_TOO_LARGE");
    assert.match(chunked.message, /larger than 1000 bytes/);

    fake.handle = (_req, res) => res.writeHead(200, { "Content-Type": "application/json" }).end('{"Id": "abc", ');
    const malformed = await rejectsWith(client.getContainer("abc").inspect(), EngineAnswerError);
    assert.equal(malformed.code, "ENGINE_BAD_JSON");
    assert.match(malformed.message, /GET \/containers\/abc\/json: the engine's answer is not JSON: \{"Id": "abc",/);

    fake.handle = (_req, res) => json(res, 200, { message: "not a list" });
    assert.equal((await rejectsWith(client.listContainers(), EngineAnswerError)).code, "ENGINE_BAD_ANSWER");
    fake.handle = (_req, res) => json(res, 200, [1]);
    assert.equal((await rejectsWith(client.getImage("a").inspect(), EngineAnswerError)).code, "ENGINE_BAD_ANSWER");
    fake.handle = (_req, res) => json(res, 201, { Warnings: [] });
    assert.equal((await rejectsWith(client.createContainer({ name: "a", Image: "b" }), EngineAnswerError)).code, "ENGINE_BAD_ANSWER");

    // The client is still usable afterwards.
    fake.handle = (_req, res) => json(res, 200, []);
    assert.deepEqual(await client.listContainers(), []);
  });

  it("a connection closed mid-answer fails with ECONNRESET (the engine unreachable), for a JSON answer and a pull", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath });
    fake.handle = (req, res) => {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "1000" });
      res.write('{"Id": "abc", "Name"', () => req.socket.destroy());
    };
    const cut = await rejectsWithCode(client.getContainer("abc").inspect(), "ECONNRESET");
    assert.ok(isEngineUnreachable(cut));

    fake.handle = (req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write('{"status":"Pulling from a/b"}\n', () => req.socket.destroy());
    };
    const progress = await client.pull({ fromImage: "a" });
    await rejectsWithCode(drain(progress), "ECONNRESET");

    // Closed before any answer.
    fake.handle = (req) => req.socket.destroy();
    assert.ok(isEngineUnreachable(await rejectsWithCode(client.ping(), "ECONNRESET")));
  });

  it("a slow answer within the timeout is read; an engine that goes silent fails with ETIMEDOUT, before or during the answer", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath, timeoutMs: 300 });
    fake.handle = (_req, res) => setTimeout(() => json(res, 200, { Version: "20.10.24", ApiVersion: "1.41" }), 150);
    assert.equal((await client.version()).Version, "20.10.24");

    const started = Date.now();
    fake.handle = () => undefined; // never answers
    const silent = await rejectsWithCode(client.version(), "ETIMEDOUT");
    assert.ok(isEngineUnreachable(silent));
    assert.match(silent.message, /sent nothing for 300 ms/);
    assert.ok(Date.now() - started < 5000);

    fake.handle = (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write("[{"); // then nothing
    };
    await rejectsWithCode(client.listContainers(), "ETIMEDOUT");

    // A stop waits out its grace period on top of the timeout: the engine answers only once the container stopped.
    fake.handle = (_req, res) => setTimeout(() => res.writeHead(204).end(), 600);
    await client.getContainer("a").stop({ t: 1 });
  });

  it("a pull waits as long as the engine works and ends when its signal aborts", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath, timeoutMs: 100 });
    fake.handle = (_req, res) => {
      res.writeHead(200);
      res.write('{"status":"Pulling from a/b"}\n');
      setTimeout(() => res.end('{"status":"Status: Image is up to date for a/b"}\n'), 400);
    };
    const events = await drain(await client.pull({ fromImage: "a" }));
    assert.equal(events.length, 2, "a pull is not subject to the inactivity timeout of ordinary calls");

    fake.handle = (_req, res) => {
      res.writeHead(200);
      res.write('{"status":"Pulling from a/b"}\n');
    };
    const ac = new AbortController();
    const progress = await client.pull({ fromImage: "a", signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(drain(progress), { name: "AbortError" });
  });

  it("events: read to the end, bounded in number", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath });
    fake.handle = (_req, res) => res.writeHead(200).end('{"Type":"container","Action":"die","Actor":{"ID":"a","Attributes":{"exitCode":"3"}}}\n{"Type":"container","Action":"die","Actor":{"ID":"a","Attributes":{"exitCode":"4"}}}\n');
    const events = await client.events({ since: "1.000", until: "2.000", filters: { container: ["a"] } });
    assert.deepEqual(events.map((e) => e.Actor?.Attributes?.["exitCode"]), ["3", "4"]);
    assert.equal((await rejectsWith(client.events({ until: "2.000", maxEvents: 1 }), EngineAnswerError)).code, "ENGINE_ANSWER_TOO_LARGE");
  });

  it("logs: framed output demultiplexed however it is split; TTY output as it is; only the last bytes kept", async () => {
    const client = new EngineClient({ socketPath: fake.socketPath });
    const frame = (stream: number, text: string) => {
      const payload = Buffer.from(text);
      const h = Buffer.alloc(8);
      h[0] = stream;
      h.writeUInt32BE(payload.length, 4);
      return Buffer.concat([h, payload]);
    };
    const framed = Buffer.concat([frame(1, "out line\n"), frame(2, "err line\n"), frame(1, "ünïcode\n")]);
    fake.handle = (_req, res) => {
      res.writeHead(200);
      // One byte at a time: headers and payloads split everywhere.
      let i = 0;
      const next = () => (i < framed.length ? res.write(framed.subarray(i, ++i), next) : res.end());
      next();
    };
    assert.equal(await client.getContainer("a").logs({ tail: 10 }), "out line\nerr line\nünïcode\n");

    fake.handle = (_req, res) => res.writeHead(200).end("tty output\r\nno frames\r\n");
    assert.equal(await client.getContainer("a").logs({ tail: 10 }), "tty output\r\nno frames\r\n");

    const many = Buffer.concat(Array.from({ length: 200 }, (_, i) => frame(1, `line ${i}\n`)));
    fake.handle = (_req, res) => res.writeHead(200).end(many);
    const tail = await client.getContainer("a").logs({ tail: 200, maxBytes: 100 });
    assert.ok(tail.startsWith("…"));
    assert.ok(tail.endsWith("line 198\nline 199\n"));
    assert.ok(Buffer.byteLength(tail) <= 100 + Buffer.byteLength("…"));
  });
});

describe("LogDemuxer", () => {
  it("keeps a short raw answer (less than a header) as it is", () => {
    const d = new LogDemuxer(1000);
    d.push(Buffer.from("hi\n"));
    assert.equal(d.text(), "hi\n");
  });

  it("stops reading frames at a header that makes no sense and keeps the rest as it is", () => {
    const d = new LogDemuxer(1000);
    const h = Buffer.alloc(8);
    h[0] = 1;
    h.writeUInt32BE(3, 4);
    d.push(Buffer.concat([h, Buffer.from("ok\n"), Buffer.from("garbage!rest")]));
    assert.equal(d.text(), "ok\ngarbage!rest");
  });
});
