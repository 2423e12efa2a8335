// A protocol-faithful fake of a Windows host's WinRM service, for tests (no Windows host can run here). It speaks
// what a WS-Management client meets on the wire:
//   - POST /wsman over HTTP or HTTPS, SOAP 1.2 envelopes, answers as WinRM shapes them;
//   - authentication by 401 challenge: `WWW-Authenticate: Negotiate` and/or `Basic realm="WSMAN"`; Basic checked
//     against the account's password; NTLM (NEGOTIATE → CHALLENGE with a random server challenge and target info →
//     AUTHENTICATE) checked independently of the client's code: the fake holds each account's NT hash, as a domain
//     controller does, and verifies the NTLMv2 proof (HMAC-MD5) from it; NTLM authenticates the connection;
//   - the shell lifecycle: Create (ShellId) → Command (CommandId; the -EncodedCommand argument decoded from base64
//     UTF-16LE) → Receive (base64 stdout/stderr chunks, one per answer, then CommandState Done with an ExitCode) →
//     Signal (terminate) → Delete;
//   - faults as WinRM sends them (HTTP 500, s:Fault with a w: subcode and a WSManFault code): the operation timeout
//     (w:TimedOut, 2150858793) on a Receive with no output yet, access denied (w:AccessDenied, 5) for an account
//     that may log in but not use WinRM, the shell quota (w:QuotaLimit, 2150859173), an envelope over the service's
//     MaxEnvelopeSize (w:EncodingLimit, 2150858817), an unknown shell (w:InvalidSelectors, 2150858843);
//   - misbehaviour on demand: a command that never ends, a connection dropped in the middle of a Receive answer.
// What each command does is up to the test (`run`): the fake runs no PowerShell; it hands the decoded script over.
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";

export const FAULTS = {
  operationTimeout: { subcode: "w:TimedOut", code: 2150858793, message: "The WS-Management service cannot complete the operation within the time specified in OperationTimeout." },
  accessDenied: { subcode: "w:AccessDenied", code: 5, message: "Access is denied." },
  quota: { subcode: "w:QuotaLimit", code: 2150859173, message: "The WS-Management service cannot process the request. This user is allowed a maximum number of 5 concurrent shells, which has been exceeded." },
  envelopeSize: { subcode: "w:EncodingLimit", code: 2150858817, message: "The WS-Management service cannot process the request because the request envelope size exceeds the maximum allowed." },
  unknownShell: { subcode: "w:InvalidSelectors", code: 2150858843, message: "The request for the Windows Remote Shell with ShellId failed because the shell was not found on the server." },
} as const;

export interface FakeAccount {
  username: string;
  /** For Basic. */
  password?: string;
  /** For NTLM: the NT hash (hex), MD4 of the UTF-16LE password, as the directory stores it. */
  ntHash?: string;
  domain?: string;
  /** false: the account authenticates but is not allowed to use WinRM (access denied). */
  allowed?: boolean;
}

/** What a command does, chosen by the test from its decoded script. */
export interface FakeBehaviour {
  /** Sent one chunk per Receive answer. */
  output?: Array<{ stream: "stdout" | "stderr"; text: string }>;
  exitCode?: number;
  /** Answer this many Receives with the operation-timeout fault before any output. */
  timeoutsBeforeOutput?: number;
  /** Never Done: every Receive times out until the command is signalled. */
  never?: boolean;
  /** Drop the connection in the middle of the first Receive answer. */
  dropMidReceive?: boolean;
}

export interface FakeWinrmOptions {
  tls?: { key: string; cert: string };
  accounts: FakeAccount[];
  auth: Array<"basic" | "ntlm">;
  maxShellsPerUser?: number;
  /** Bytes; default 153600, as WinRM's default MaxEnvelopeSizekb of 150. */
  maxEnvelopeSize?: number;
  run(script: string, args: string[]): FakeBehaviour;
}

export interface FakeRequest {
  action: string;
  user: string;
  shellId?: string;
}

interface FakeCommand {
  id: string;
  script: string;
  behaviour: FakeBehaviour;
  sent: number;
  timeouts: number;
  signalled: boolean;
}

interface FakeShell {
  id: string;
  user: string;
  commands: Map<string, FakeCommand>;
}

export interface FakeWinrm {
  url: string;
  port: number;
  requests: FakeRequest[];
  /** Shells open now. */
  shells(): number;
  /** Decoded scripts in the order commands were created. */
  scripts: string[];
  /** Commands that were signalled to terminate. */
  signalled: string[];
  /** Authentication attempts that failed, with the scheme. */
  refusals: string[];
  stop(): Promise<void>;
}

const NS = `xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"`;
const RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";

const text = (xml: string, local: string) => new RegExp(`<(?:[\\w-]+:)?${local}\\b[^>]*>([\\s\\S]*?)</(?:[\\w-]+:)?${local}>`).exec(xml)?.[1]?.trim();
const hmacMd5 = (key: Buffer, ...data: Buffer[]) => {
  const h = createHmac("md5", key);
  for (const d of data) h.update(d);
  return h.digest();
};

function envelope(action: string, body: string, relatesTo = ""): string {
  return `<s:Envelope ${NS}><s:Header><a:Action>${action}</a:Action><a:MessageID>uuid:${randomUUID()}</a:MessageID>${relatesTo ? `<a:RelatesTo>${relatesTo}</a:RelatesTo>` : ""}</s:Header><s:Body>${body}</s:Body></s:Envelope>`;
}

function fault(f: { subcode: string; code: number; message: string }): string {
  return envelope(
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault",
    `<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>${f.subcode}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">${f.message}</s:Text></s:Reason>` +
      `<s:Detail><f:WSManFault Code="${f.code}" Machine="fake-win"><f:Message>${f.message}</f:Message></f:WSManFault></s:Detail></s:Fault>`,
  );
}

/** NTLM AV pairs: NetBIOS computer and domain names, a timestamp, end of list. */
function targetInfo(): Buffer {
  const pair = (id: number, value: Buffer) => {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(id, 0);
    h.writeUInt16LE(value.length, 2);
    return Buffer.concat([h, value]);
  };
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64LE((BigInt(Date.now()) + 11_644_473_600_000n) * 10_000n);
  return Buffer.concat([pair(2, Buffer.from("FAKEDOM", "utf16le")), pair(1, Buffer.from("FAKE-WIN", "utf16le")), pair(7, ts), pair(0, Buffer.alloc(0))]);
}

function challengeMessage(serverChallenge: Buffer, info: Buffer): Buffer {
  const name = Buffer.from("FAKEDOM", "utf16le");
  const h = Buffer.alloc(48);
  h.write("NTLMSSP\0", 0, "latin1");
  h.writeUInt32LE(2, 8);
  h.writeUInt16LE(name.length, 12);
  h.writeUInt16LE(name.length, 14);
  h.writeUInt32LE(48, 16);
  h.writeUInt32LE(0xa2898205 >>> 0, 20);
  serverChallenge.copy(h, 24);
  h.writeUInt16LE(info.length, 40);
  h.writeUInt16LE(info.length, 42);
  h.writeUInt32LE(48 + name.length, 44);
  return Buffer.concat([h, name, info]);
}

export async function startFakeWinrm(opts: FakeWinrmOptions): Promise<FakeWinrm> {
  const maxEnvelope = opts.maxEnvelopeSize ?? 153_600;
  const shells = new Map<string, FakeShell>();
  const requests: FakeRequest[] = [];
  const scripts: string[] = [];
  const signalled: string[] = [];
  const refusals: string[] = [];
  // NTLM state per connection: the challenge sent, then the authenticated user.
  const conn = new WeakMap<Socket, { challenge?: Buffer; user?: string }>();
  const sockets = new Set<Socket>();

  const challengeHeaders = (): string[] => [...(opts.auth.includes("ntlm") ? ["Negotiate"] : []), ...(opts.auth.includes("basic") ? ['Basic realm="WSMAN"'] : [])];

  /** The account this request is authenticated as, or undefined after answering it (401). */
  function authenticate(req: http.IncomingMessage, res: http.ServerResponse): FakeAccount | undefined {
    const socket = req.socket;
    const state = conn.get(socket) ?? {};
    conn.set(socket, state);
    const unauthorized = (headers: string[] = challengeHeaders()) => {
      res.writeHead(401, { "www-authenticate": headers, "content-length": 0 });
      res.end();
      return undefined;
    };
    const header = req.headers.authorization;
    if (!header) {
      if (state.user) return opts.accounts.find((a) => a.username === state.user);
      return unauthorized();
    }
    const [scheme, token = ""] = header.split(" ");
    if (scheme === "Basic" && opts.auth.includes("basic")) {
      const [user, ...rest] = Buffer.from(token, "base64").toString("utf8").split(":");
      const account = opts.accounts.find((a) => a.username === user && a.password !== undefined && a.password === rest.join(":"));
      if (!account) {
        refusals.push("basic");
        return unauthorized();
      }
      return account;
    }
    if ((scheme === "Negotiate" || scheme === "NTLM") && opts.auth.includes("ntlm")) {
      const msg = Buffer.from(token, "base64");
      if (msg.length < 12 || msg.subarray(0, 8).toString("latin1") !== "NTLMSSP\0") return unauthorized();
      const type = msg.readUInt32LE(8);
      if (type === 1) {
        state.challenge = randomBytes(8);
        return unauthorized([`${scheme} ${challengeMessage(state.challenge, targetInfo()).toString("base64")}`]);
      }
      if (type === 3 && state.challenge) {
        const field = (at: number) => msg.subarray(msg.readUInt32LE(at + 4), msg.readUInt32LE(at + 4) + msg.readUInt16LE(at));
        const nt = field(20);
        const domain = field(28).toString("utf16le");
        const user = field(36).toString("utf16le");
        const account = opts.accounts.find((a) => a.username.toLowerCase() === user.toLowerCase() && a.ntHash && (a.domain ?? "") .toLowerCase() === domain.toLowerCase());
        const challenge = state.challenge;
        delete state.challenge;
        if (account && nt.length > 24) {
          const key = hmacMd5(Buffer.from(account.ntHash!, "hex"), Buffer.from(user.toUpperCase() + domain, "utf16le"));
          const proof = nt.subarray(0, 16);
          const blob = nt.subarray(16);
          if (hmacMd5(key, challenge, blob).equals(proof)) {
            state.user = account.username;
            return account;
          }
        }
        refusals.push("ntlm");
        return unauthorized();
      }
    }
    refusals.push(scheme ?? "none");
    return unauthorized();
  }

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/wsman") {
        res.writeHead(404).end();
        return;
      }
      const account = authenticate(req, res);
      if (!account) return;
      const body = Buffer.concat(chunks).toString("utf8");
      const send = (status: number, xml: string) => {
        res.writeHead(status, { "content-type": "application/soap+xml;charset=UTF-8", "content-length": Buffer.byteLength(xml) });
        res.end(xml);
      };
      const action = text(body, "Action") ?? "";
      const shellId = /<(?:[\w-]+:)?Selector Name="ShellId">([^<]+)</.exec(body)?.[1];
      requests.push({ action: action.slice(action.lastIndexOf("/") + 1), user: account.username, ...(shellId ? { shellId } : {}) });
      if (account.allowed === false) return send(500, fault(FAULTS.accessDenied));
      if (Buffer.byteLength(body) > maxEnvelope) return send(500, fault(FAULTS.envelopeSize));
      const messageId = text(body, "MessageID") ?? "";

      if (action.endsWith("/transfer/Create")) {
        const mine = [...shells.values()].filter((s) => s.user === account.username).length;
        if (opts.maxShellsPerUser !== undefined && mine >= opts.maxShellsPerUser) return send(500, fault(FAULTS.quota));
        const id = randomUUID().toUpperCase();
        shells.set(id, { id, user: account.username, commands: new Map() });
        return send(200, envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", `<x:ResourceCreated xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer"><a:ReferenceParameters><w:SelectorSet><w:Selector Name="ShellId">${id}</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated><rsp:Shell><rsp:ShellId>${id}</rsp:ShellId></rsp:Shell>`, messageId));
      }
      const shell = shellId ? shells.get(shellId) : undefined;
      if (!shell) return send(500, fault(FAULTS.unknownShell));

      if (action.endsWith("/transfer/Delete")) {
        shells.delete(shell.id);
        return send(200, envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", "", messageId));
      }
      if (action === `${RSP}/Command`) {
        const args = [...body.matchAll(/<(?:[\w-]+:)?Arguments>([^<]*)</g)].map((m) => m[1]!);
        const enc = args[args.indexOf("-EncodedCommand") + 1] ?? "";
        const script = Buffer.from(enc, "base64").toString("utf16le");
        scripts.push(script);
        const id = randomUUID().toUpperCase();
        shell.commands.set(id, { id, script, behaviour: opts.run(script, args), sent: 0, timeouts: 0, signalled: false });
        return send(200, envelope(`${RSP}/CommandResponse`, `<rsp:CommandResponse><rsp:CommandId>${id}</rsp:CommandId></rsp:CommandResponse>`, messageId));
      }
      const commandId = /CommandId="([^"]+)"/.exec(body)?.[1] ?? "";
      const command = shell.commands.get(commandId);
      if (action === `${RSP}/Signal`) {
        if (command) {
          command.signalled = true;
          signalled.push(command.id);
        }
        return send(200, envelope(`${RSP}/SignalResponse`, "<rsp:SignalResponse/>", messageId));
      }
      if (action === `${RSP}/Receive`) {
        if (!command) return send(500, fault(FAULTS.unknownShell));
        const b = command.behaviour;
        if (b.dropMidReceive) {
          // Headers and half an answer, then the connection is gone.
          res.writeHead(200, { "content-type": "application/soap+xml;charset=UTF-8", "content-length": 4096 });
          res.write(`<s:Envelope ${NS}><s:Header>`);
          setTimeout(() => req.socket.destroy(), 20);
          return;
        }
        if (b.never || command.timeouts < (b.timeoutsBeforeOutput ?? 0)) {
          command.timeouts++;
          // WinRM holds the Receive for OperationTimeout first; the fake answers after a short hold.
          setTimeout(() => send(500, fault(FAULTS.operationTimeout)), 50);
          return;
        }
        const out = b.output ?? [];
        const chunk = out[command.sent];
        const streams = chunk ? `<rsp:Stream Name="${chunk.stream}" CommandId="${command.id}">${Buffer.from(chunk.text, "utf8").toString("base64")}</rsp:Stream>` : "";
        if (chunk) command.sent++;
        const done = command.sent >= out.length;
        const state = done
          ? `<rsp:CommandState CommandId="${command.id}" State="${RSP}/CommandState/Done"><rsp:ExitCode>${b.exitCode ?? 0}</rsp:ExitCode></rsp:CommandState>`
          : `<rsp:CommandState CommandId="${command.id}" State="${RSP}/CommandState/Running"/>`;
        return send(200, envelope(`${RSP}/ReceiveResponse`, `<rsp:ReceiveResponse>${streams}${done ? `<rsp:Stream Name="stdout" CommandId="${command.id}" End="true"/>` : ""}${state}</rsp:ReceiveResponse>`, messageId));
      }
      return send(500, fault({ subcode: "w:ActionNotSupported", code: 2150858754, message: `unsupported action ${action}` }));
    });
  };

  const server = opts.tls ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, handler) : http.createServer(handler);
  server.on(opts.tls ? "secureConnection" : "connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${opts.tls ? "https" : "http"}://127.0.0.1:${port}/wsman`,
    port,
    requests,
    shells: () => shells.size,
    scripts,
    signalled,
    refusals,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
