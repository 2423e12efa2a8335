// The one place @peculiar/x509 is loaded, and only when it is first needed: building a certificate (the CA), or
// creating or reading a CSR (enrolment and renewal). Reading a certificate's fields needs node:crypto alone
// (certificate-info.ts), so a running agent never loads the library and its ASN.1 schemas (≈ 3.5 MB of heap;
// docs/performance.md, "Footprint").
//
// tsyringe, which @peculiar/x509 uses internally, needs the Reflect metadata polyfill loaded first. The library
// signs with Node's own WebCrypto: set globally (it reads the provider in places that take no argument, e.g.
// PublicKey.export), and also passed explicitly wherever the API accepts it, so another module replacing the global
// provider cannot change how Ferry signs.
import type * as X509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";

let loading: Promise<typeof X509> | undefined;

/** @peculiar/x509, loaded once, with Node's WebCrypto as its provider. */
export function loadX509(): Promise<typeof X509> {
  loading ??= (async () => {
    await import("reflect-metadata");
    const x509 = commonJsExports(await import("@peculiar/x509"));
    x509.cryptoProvider.set(webcrypto);
    return x509;
  })();
  return loading;
}

/**
 * The library's exports whichever way it was loaded: Node's own import() of its CommonJS build gives them as named
 * exports (and module.exports as `default`); the agent's split bundle (scripts/bundle-agent.mjs) loads it from a chunk
 * of its own, which exports module.exports as `default` only.
 */
function commonJsExports(mod: typeof X509): typeof X509 {
  const cjs = (mod as unknown as { default?: typeof X509 }).default;
  return cjs !== undefined && typeof cjs.cryptoProvider === "object" ? cjs : mod;
}

export { webcrypto };
