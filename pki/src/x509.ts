// The one place @peculiar/x509 is loaded. The rest of the package imports `x509` and `webcrypto` from here, so the
// Reflect polyfill is always in place first and the library always signs with Node's own WebCrypto.
// tsyringe, which @peculiar/x509 uses internally, needs the Reflect metadata polyfill loaded first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";

// Set globally (the library reads the provider in places that take no argument, e.g. PublicKey.export), and
// also passed explicitly wherever the API accepts it, so another module replacing the global provider
// cannot change how Ferry signs.
x509.cryptoProvider.set(webcrypto);

export { x509 };
export { webcrypto };
