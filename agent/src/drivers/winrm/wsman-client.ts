// A small WS-Management client for WinRM's remote shell (MS-WSMV), written for Ferry because nothing usable exists
// for Node on Linux: node-powershell only drives a local `pwsh`, which cannot be installed here and does not do
// WS-Man remoting from Linux anyway (that needs PSRP over OMI/gss-ntlmssp). WinRM's cmd shell resource is small and
// stable, and PowerShell runs inside it as `powershell -NoProfile -NonInteractive -EncodedCommand <base64 UTF-16LE>`.
//
// The lifecycle of one command, each step one SOAP envelope POSTed to /wsman:
//   Create (a shell) → Command (powershell …) → Receive, again and again, until the command's state is Done with an
//   exit code → Signal (terminate) → Delete (the shell)
// Receive is a long poll: with no output within OperationTimeout the service answers the fault w:TimedOut, WSMan
// code 2150858793, which means "ask again", not a failure.
//
// Authentication: Basic (Authorization on every request) or NTLM (ntlm.ts; the 401 challenge handshake once per
// connection, on one kept-alive connection). HTTPS checks the certificate against the system CAs or the agent's
// drivers.winrm.caFile; it can be turned off only by nothing: there is no such setting.
//
// Faults become WsmanError with the WSMan code, the SOAP subcode and the message; transport failures keep Node's code.
import http from "node:http";
import https from "node:https";
import { randomUUID } from "node:crypto";

import { authenticateMessage, negotiateMessage, parseChallenge, splitUser } from "./ntlm.js";

export const RESOURCE_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
const NS = {
  s: "http://www.w3.org/2003/05/soap-envelope",
  a: "http://schemas.xmlsoap.org/ws/2004/08/addressing",
  w: "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
  p: "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
  rsp: "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
};
export const ACTIONS = {
  create: "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
  delete: "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
  command: `${NS.rsp}/Command`,
  receive: `${NS.rsp}/Receive`,
  signal: `${NS.rsp}/Signal`,
};
export const SIGNAL_TERMINATE = `${NS.rsp}/signal/terminate`;
export const STATE_DONE = `${NS.rsp}/CommandState/Done`;
/** w:TimedOut on Receive: no output within OperationTimeout; ask again. */
export const WSMAN_OPERATION_TIMEOUT = 2150858793;
/** Default MaxEnvelopeSize of WinRM (150 KiB). */
export const DEFAULT_MAX_ENVELOPE = 153_600;
/** The longest command line Windows' CreateProcess takes through cmd (8,191 characters). */
export const MAX_COMMAND_LINE = 8191;

export interface WsmanAuth {
  method: "basic" | "ntlm";
  username: string;
  password: string;
}

export interface WsmanClientOptions {
  /** https://host:5986/wsman or http://host:5985/wsman */
  endpoint: string;
  auth: WsmanAuth;
  /** PEM CA bundle to check the host's certificate with (default: the system's). */
  ca?: string | Buffer;
  /** Seconds the service may hold a Receive before it answers w:TimedOut; default 20. */
  operationTimeoutSeconds?: number;
  maxEnvelopeSize?: number;
  /** Bound on one HTTP exchange beyond the operation timeout; default 30 s. */
  requestSlackMs?: number;
}

export class WsmanError extends Error {
  override readonly name = "WsmanError";
  constructor(
    message: string,
    readonly kind: "fault" | "auth" | "transport" | "tls" | "protocol",
    readonly wsmanCode?: number,
    readonly subcode?: string,
    readonly httpStatus?: number,
    readonly errno?: string,
  ) {
    super(message);
  }
}

export function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** The text of the first element with this local name (any prefix), or undefined. */
export function elementText(xml: string, local: string): string | undefined {
  const m = new RegExp(`<(?:[\\w-]+:)?${local}\\b[^>]*>([\\s\\S]*?)</(?:[\\w-]+:)?${local}>`).exec(xml);
  return m?.[1];
}

function unescapeXml(s: string): string {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&");
}

export interface ReceiveResult {
  stdout: Buffer;
  stderr: Buffer;
  done: boolean;
  exitCode?: number;
}

export class WsmanClient {
  readonly #o: Required<Omit<WsmanClientOptions, "ca">> & { ca?: string | Buffer };
  readonly #url: URL;
  readonly #agent: http.Agent;

  constructor(opts: WsmanClientOptions) {
    this.#o = { operationTimeoutSeconds: 20, maxEnvelopeSize: DEFAULT_MAX_ENVELOPE, requestSlackMs: 30_000, ...opts };
    this.#url = new URL(opts.endpoint);
    // One connection, kept alive: NTLM's handshake belongs to it, and WinRM shells are cheap to reach over it.
    const agentOpts = { keepAlive: true, maxSockets: 1 };
    this.#agent = this.#url.protocol === "https:" ? new https.Agent({ ...agentOpts, ...(opts.ca ? { ca: opts.ca } : {}), rejectUnauthorized: true }) : new http.Agent(agentOpts);
  }

  close(): void {
    this.#agent.destroy();
  }

  #envelope(action: string, body: string, extraHeaders = ""): string {
    return (
      `<s:Envelope xmlns:s="${NS.s}" xmlns:a="${NS.a}" xmlns:w="${NS.w}" xmlns:p="${NS.p}" xmlns:rsp="${NS.rsp}">` +
      "<s:Header>" +
      `<a:To>${xmlEscape(this.#url.toString())}</a:To>` +
      `<a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>` +
      `<a:Action s:mustUnderstand="true">${action}</a:Action>` +
      `<a:MessageID>uuid:${randomUUID()}</a:MessageID>` +
      `<w:ResourceURI s:mustUnderstand="true">${RESOURCE_CMD}</w:ResourceURI>` +
      `<w:MaxEnvelopeSize s:mustUnderstand="true">${this.#o.maxEnvelopeSize}</w:MaxEnvelopeSize>` +
      `<w:OperationTimeout>PT${this.#o.operationTimeoutSeconds}.000S</w:OperationTimeout>` +
      `<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>` +
      extraHeaders +
      "</s:Header>" +
      `<s:Body>${body}</s:Body></s:Envelope>`
    );
  }

  #shellSelector(shellId: string): string {
    return `<w:SelectorSet><w:Selector Name="ShellId">${xmlEscape(shellId)}</w:Selector></w:SelectorSet>`;
  }

  /** POSTs one envelope and returns the response body; faults and HTTP errors throw WsmanError. */
  async send(envelope: string, signal?: AbortSignal): Promise<string> {
    const bytes = Buffer.byteLength(envelope);
    if (bytes > this.#o.maxEnvelopeSize) {
      throw new WsmanError(`the request envelope is ${bytes} bytes, over MaxEnvelopeSize ${this.#o.maxEnvelopeSize}`, "protocol");
    }
    let authorization: string | undefined;
    if (this.#o.auth.method === "basic") {
      authorization = `Basic ${Buffer.from(`${this.#o.auth.username}:${this.#o.auth.password}`).toString("base64")}`;
      return this.#check(await this.#post(envelope, authorization, signal));
    }
    // NTLM: a 401 with a challenge, then the authenticate message, on the same connection.
    let res = await this.#post(envelope, undefined, signal);
    if (res.status !== 401) return this.#check(res);
    res = await this.#post(envelope, `Negotiate ${negotiateMessage().toString("base64")}`, signal);
    const header = ([] as string[]).concat(res.headers["www-authenticate"] ?? []).find((h) => /^(Negotiate|NTLM) \S+/.test(h));
    if (res.status !== 401 || !header) return this.#check(res);
    const [scheme, token] = header.split(" ");
    const challenge = parseChallenge(Buffer.from(token!, "base64"));
    const { user, domain } = splitUser(this.#o.auth.username);
    const auth = authenticateMessage({ username: user, password: this.#o.auth.password, domain }, challenge);
    return this.#check(await this.#post(envelope, `${scheme} ${auth.toString("base64")}`, signal));
  }

  #check(res: { status: number; body: string; headers: http.IncomingHttpHeaders }): string {
    if (res.status === 401) throw new WsmanError("the host refused the credentials (HTTP 401)", "auth", undefined, undefined, 401);
    if (res.status === 200) return res.body;
    const faultCode = /<(?:[\w-]+:)?WSManFault\b[^>]*\bCode="(\d+)"/.exec(res.body)?.[1];
    const subcodes = [...res.body.matchAll(/<(?:[\w-]+:)?Subcode>\s*<(?:[\w-]+:)?Value>([^<]+)</g)].map((m) => m[1]!);
    const message = unescapeXml((elementText(res.body, "Message") ?? elementText(res.body, "Text") ?? `HTTP ${res.status}`).replace(/<[^>]+>/g, "").trim());
    if (faultCode || /<(?:[\w-]+:)?Fault\b/.test(res.body)) {
      throw new WsmanError(message, "fault", faultCode ? Number(faultCode) : undefined, subcodes[subcodes.length - 1], res.status);
    }
    throw new WsmanError(`HTTP ${res.status} from ${this.#url.host}: ${message.slice(0, 200)}`, "protocol", undefined, undefined, res.status);
  }

  #post(envelope: string, authorization: string | undefined, signal?: AbortSignal): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
    const lib = this.#url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        this.#url,
        {
          method: "POST",
          agent: this.#agent,
          headers: {
            "content-type": "application/soap+xml;charset=UTF-8",
            "content-length": Buffer.byteLength(envelope),
            ...(authorization ? { authorization } : {}),
          },
          timeout: this.#o.operationTimeoutSeconds * 1000 + this.#o.requestSlackMs,
          ...(signal ? { signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers }));
          res.on("error", (err) => reject(transportError(err, this.#url)));
          res.on("aborted", () => reject(new WsmanError(`the connection to ${this.#url.host} dropped mid-answer`, "transport", undefined, undefined, undefined, "ECONNRESET")));
        },
      );
      req.on("timeout", () => req.destroy(Object.assign(new Error("no answer in time"), { code: "ETIMEDOUT" })));
      req.on("error", (err) => reject(signal?.aborted && signal.reason instanceof Error ? signal.reason : transportError(err, this.#url)));
      req.end(envelope);
    });
  }

  async createShell(signal?: AbortSignal): Promise<string> {
    const options = '<w:OptionSet><w:Option Name="WINRS_NOPROFILE">TRUE</w:Option><w:Option Name="WINRS_CODEPAGE">65001</w:Option></w:OptionSet>';
    const body = "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>";
    const xml = await this.send(this.#envelope(ACTIONS.create, body, options), signal);
    const id = elementText(xml, "ShellId") ?? /<(?:[\w-]+:)?Selector Name="ShellId">([^<]+)</.exec(xml)?.[1];
    if (!id) throw new WsmanError("the Create answer names no ShellId", "protocol");
    return id.trim();
  }

  async command(shellId: string, command: string, args: string[], signal?: AbortSignal): Promise<string> {
    const line = [command, ...args].join(" ");
    if (line.length > MAX_COMMAND_LINE) throw new WsmanError(`the command line is ${line.length} characters, over Windows' ${MAX_COMMAND_LINE}`, "protocol");
    const options = '<w:OptionSet><w:Option Name="WINRS_CONSOLEMODE_STDIN">TRUE</w:Option><w:Option Name="WINRS_SKIP_CMD_SHELL">TRUE</w:Option></w:OptionSet>';
    const body = `<rsp:CommandLine><rsp:Command>${xmlEscape(command)}</rsp:Command>${args.map((a) => `<rsp:Arguments>${xmlEscape(a)}</rsp:Arguments>`).join("")}</rsp:CommandLine>`;
    const xml = await this.send(this.#envelope(ACTIONS.command, body, this.#shellSelector(shellId) + options), signal);
    const id = elementText(xml, "CommandId");
    if (!id) throw new WsmanError("the Command answer names no CommandId", "protocol");
    return id.trim();
  }

  /** One Receive. A w:TimedOut fault (no output within the operation timeout) is an empty, not-done result. */
  async receive(shellId: string, commandId: string, signal?: AbortSignal): Promise<ReceiveResult> {
    const body = `<rsp:Receive><rsp:DesiredStream CommandId="${xmlEscape(commandId)}">stdout stderr</rsp:DesiredStream></rsp:Receive>`;
    let xml: string;
    try {
      xml = await this.send(this.#envelope(ACTIONS.receive, body, this.#shellSelector(shellId)), signal);
    } catch (err) {
      if (err instanceof WsmanError && err.wsmanCode === WSMAN_OPERATION_TIMEOUT) return { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), done: false };
      throw err;
    }
    const out: Buffer[] = [];
    const errs: Buffer[] = [];
    for (const m of xml.matchAll(/<(?:[\w-]+:)?Stream\b([^>]*?)(?:\/>|>([^<]*)<\/(?:[\w-]+:)?Stream>)/g)) {
      const name = /Name="([^"]+)"/.exec(m[1] ?? "")?.[1];
      const data = Buffer.from((m[2] ?? "").trim(), "base64");
      if (name === "stdout") out.push(data);
      else if (name === "stderr") errs.push(data);
    }
    const state = /<(?:[\w-]+:)?CommandState\b[^>]*State="([^"]+)"/.exec(xml)?.[1];
    const done = state === STATE_DONE;
    const exit = elementText(xml, "ExitCode");
    const r: ReceiveResult = { stdout: Buffer.concat(out), stderr: Buffer.concat(errs), done };
    if (done && exit !== undefined && /^-?\d+$/.test(exit.trim())) r.exitCode = Number(exit.trim());
    return r;
  }

  async signal(shellId: string, commandId: string): Promise<void> {
    const body = `<rsp:Signal CommandId="${xmlEscape(commandId)}"><rsp:Code>${SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>`;
    await this.send(this.#envelope(ACTIONS.signal, body, this.#shellSelector(shellId)));
  }

  async deleteShell(shellId: string): Promise<void> {
    await this.send(this.#envelope(ACTIONS.delete, "", this.#shellSelector(shellId)));
  }
}

function transportError(err: Error, url: URL): WsmanError {
  const code = (err as NodeJS.ErrnoException).code ?? "";
  if (/CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|HOSTNAME|ALTNAME/i.test(code) || /certificate/i.test(err.message)) {
    return new WsmanError(`the certificate of ${url.host} was not accepted: ${code || err.message}`, "tls", undefined, undefined, undefined, code);
  }
  return new WsmanError(`${url.host}: ${code || err.message}`, "transport", undefined, undefined, undefined, code);
}
