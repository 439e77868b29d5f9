/**
 * One JSON line per HTTP request (runtime/log.ts), with a request id: the caller's `x-request-id`
 * when it is a plain token (a load balancer's or a client's), else a fresh UUID, echoed in the
 * response either way so a device's or an operator's complaint can be found in the logs. Handlers
 * add the ids they learn (profile, transactionId, workflowId, deviceId) to the same line with
 * `noteRequest`. The query string is never logged: a SCEP GET carries the whole message there.
 */
import { randomUUID } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { componentLogger, type Logger } from '../../runtime/log.js';

export interface RequestFields {
  profile?: string;
  transactionId?: string;
  messageType?: string;
  workflowId?: string;
  deviceId?: string;
  claimedDeviceId?: string;
  pkiStatus?: string;
  failInfo?: string;
}

declare module 'hono' {
  interface ContextVariableMap {
    /** This request's logger: every line carries its requestId. */
    log: Logger;
    requestId: string;
    requestFields: RequestFields;
  }
}

const INCOMING_ID = /^[\w.:@-]{1,128}$/;

export function requestLogging(surface: 'public' | 'operator'): MiddlewareHandler {
  return async (c, next) => {
    const given = c.req.header('x-request-id');
    const requestId = given && INCOMING_ID.test(given) ? given : randomUUID();
    const log = componentLogger('api').child({ requestId, surface });
    const fields: RequestFields = {};
    c.set('requestId', requestId);
    c.set('log', log);
    c.set('requestFields', fields);
    const started = performance.now();
    try {
      await next();
    } finally {
      c.header('x-request-id', requestId);
      const status = c.res.status;
      log[status >= 500 ? 'warn' : 'info'](
        {
          method: c.req.method,
          path: c.req.path.slice(0, 256),
          status,
          ms: Math.round(performance.now() - started),
          ...fields,
        },
        'request',
      );
    }
  };
}

/** Adds ids to this request's log line (a no-op outside the middleware, e.g. in app.request tests). */
export function noteRequest(c: Context, more: RequestFields): void {
  const fields = c.get('requestFields');
  if (fields) Object.assign(fields, more);
}

/** This request's logger, or the API's when the middleware did not run. */
export function requestLog(c: Context): Logger {
  return c.get('log') ?? componentLogger('api');
}
