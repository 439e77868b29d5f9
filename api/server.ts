import { type Listener, listenOn } from '../runtime/http-listener.js';
import type { OperatorTls } from '../runtime/operator-tls.js';
import { type AppDeps, createOperatorApp, createPublicApp } from './app.js';

export interface RunningServer {
  /** The public listener (SCEP, CRL, OCSP). */
  url: string;
  /** The operators' HTTPS listener, when one was asked for. */
  operatorUrl?: string;
  close(): Promise<void>;
}

/**
 * Serves the public app over HTTP and, with `operator`, the operators' app over HTTPS. A client
 * certificate is asked for (and the operators' CA named in the CertificateRequest) but not required
 * by TLS: MDM webhooks have none; the operator routes decide (OPERATOR_AUTH).
 */
export async function startApiServer(
  deps: AppDeps,
  listen: { host: string; port: number },
  operator?: { host: string; port: number; tls: OperatorTls },
): Promise<RunningServer> {
  const publicServer = await listenOn(createPublicApp(deps), listen);
  let operatorServer: Listener | undefined;
  try {
    if (operator)
      operatorServer = await listenOn(createOperatorApp(deps), operator, {
        cert: operator.tls.cert,
        key: operator.tls.key,
        ca: operator.tls.clientCas,
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      });
  } catch (err) {
    await publicServer.close();
    throw err;
  }
  return {
    url: publicServer.url,
    ...(operatorServer ? { operatorUrl: operatorServer.url } : {}),
    async close() {
      await Promise.all([publicServer.close(), operatorServer?.close()]);
    },
  };
}
