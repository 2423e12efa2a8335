// The enrolment listener's TLS front: Ferry terminates TLS with the shared listener settings (AEAD-only suites,
// pki/src/tls-options.ts) and hands each connection to grpc-js, as the agent listener does. grpc-js's own TLS
// (ServerCredentials.createSsl) takes its cipher list only from the GRPC_SSL_CIPHER_SUITES environment variable,
// read once when the module loads, so it cannot be set per listener.
import { ServerCredentials, type Server } from "@grpc/grpc-js";
import * as tls from "node:tls";
import type { Logger } from "pino";
import { LISTENER_TLS_OPTIONS } from "@ferry/pki";

export class TlsFront {
  private readonly server: tls.Server;
  private readonly sockets = new Set<tls.TLSSocket>();
  private readonly injector;

  constructor(grpc: Server, keyPem: string, certChainPem: string, log: Logger) {
    this.injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
    this.server = tls.createServer({ ...LISTENER_TLS_OPTIONS, key: keyPem, cert: certChainPem, ALPNProtocols: ["h2"] });
    this.server.on("secureConnection", (socket) => {
      this.sockets.add(socket);
      socket.on("error", (err: Error) => log.debug({ err: err.message }, "enrolment connection error"));
      socket.once("close", () => this.sockets.delete(socket));
      this.injector.injectConnection(socket);
    });
    this.server.on("tlsClientError", (err) => log.debug({ err: err.message }, "enrolment TLS handshake failed"));
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ host, port, backlog: 1024 }, () => {
        this.server.off("error", reject);
        const addr = this.server.address();
        resolve(typeof addr === "object" && addr ? addr.port : port);
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.injector.destroy();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
