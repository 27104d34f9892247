import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ChargegateError } from '../core/errors.ts';

// TLS_CERT_FILE / TLS_KEY_FILE: read and checked together, at start (a bad file stops the
// start with one line naming the variable, exit 2) and on SIGHUP (a bad file keeps the
// certificate in use and says why), so certificates can rotate without a restart.

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

function read(file: string, variable: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ChargegateError('CG_ERR_CONFIG', `invalid ${variable}=${JSON.stringify(file)}: cannot read it (${why})`);
  }
}

/** Reads both files and proves they belong together (a key that does not match the certificate is refused). */
export function loadTls(certFile: string, keyFile: string): TlsFiles {
  const cert = read(certFile, 'TLS_CERT_FILE');
  const key = read(keyFile, 'TLS_KEY_FILE');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ChargegateError('CG_ERR_CONFIG', `invalid TLS_CERT_FILE=${JSON.stringify(certFile)}: not a PEM certificate (${(err as Error).message})`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ChargegateError('CG_ERR_CONFIG', `invalid TLS_KEY_FILE=${JSON.stringify(keyFile)}: not a usable PEM private key (${(err as Error).message})`);
  }
  // OpenSSL would only find out at the first handshake (createSecureContext accepts a pair that does not match).
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ChargegateError('CG_ERR_CONFIG', `invalid TLS_KEY_FILE=${JSON.stringify(keyFile)}: the key does not match the certificate in TLS_CERT_FILE`);
  }
  return { cert, key };
}
