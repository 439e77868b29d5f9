import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';

export interface RateLimitSettings {
  /** Sustained requests per minute per client IP; 0 turns the limit off. */
  perMinute: number;
  /** Requests a client may send at once before the sustained rate applies. */
  burst: number;
}

/** The surfaces that are limited separately: a flood of one never starves another. */
export type RateLimitedSurface = 'scep' | 'ocsp' | 'operator' | 'mdm' | 'login';

const DEFAULTS: Record<RateLimitedSurface, RateLimitSettings> = {
  scep: { perMinute: 120, burst: 30 },
  // Relying parties (RADIUS, VPN gateways) ask often and from few addresses.
  ocsp: { perMinute: 1200, burst: 200 },
  operator: { perMinute: 300, burst: 60 },
  mdm: { perMinute: 600, burst: 120 },
  // The console's login form checks the operator token: guesses are what it must slow down.
  login: { perMinute: 10, burst: 10 },
};

/**
 * From <SURFACE>_RATE_PER_MINUTE (0 = off) and <SURFACE>_RATE_BURST, e.g. SCEP_RATE_PER_MINUTE
 * (default 120, burst 30), OCSP_RATE_PER_MINUTE (1200, 200), OPERATOR_RATE_PER_MINUTE (300, 60),
 * MDM_RATE_PER_MINUTE (600, 120: MDM webhooks and Jamf), LOGIN_RATE_PER_MINUTE (10, 10: the
 * console's login form).
 */
export function rateLimitFromEnv(
  surface: RateLimitedSurface = 'scep',
  env: NodeJS.ProcessEnv = process.env,
): RateLimitSettings {
  const prefix = surface.toUpperCase();
  const number = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number`);
    return value;
  };
  return {
    perMinute: number(`${prefix}_RATE_PER_MINUTE`, DEFAULTS[surface].perMinute),
    burst: Math.max(1, number(`${prefix}_RATE_BURST`, DEFAULTS[surface].burst)),
  };
}

/** Buckets kept before idle (full) ones are swept: bounds memory under an address-spraying client. */
const MAX_BUCKETS = 10_000;

/**
 * Per-client-IP token bucket, in memory and per process: with N API replicas a client gets up to N
 * times the rate, and a restart forgets. The client IP is the TCP peer: behind a reverse proxy every
 * device shares the proxy's address, so rate-limit at the proxy instead (or raise the limits).
 * Over the limit: 429 with Retry-After, in the surface's own error shape.
 */
export function rateLimit(
  surface: RateLimitedSurface,
  settings: RateLimitSettings = rateLimitFromEnv(surface),
  now: () => number = Date.now,
): MiddlewareHandler {
  const perMs = settings.perMinute / 60_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const refill = (b: { tokens: number; at: number }, t: number) => {
    b.tokens = Math.min(settings.burst, b.tokens + (t - b.at) * perMs);
    b.at = t;
  };
  return async (c, next) => {
    if (settings.perMinute <= 0) return next();
    const t = now();
    const ip = clientIp(c);
    let bucket = buckets.get(ip);
    if (!bucket) {
      if (buckets.size >= MAX_BUCKETS) {
        for (const [key, b] of buckets) {
          refill(b, t);
          if (b.tokens >= settings.burst) buckets.delete(key);
        }
      }
      bucket = { tokens: settings.burst, at: t };
      buckets.set(ip, bucket);
    } else refill(bucket, t);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return next();
    }
    const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000));
    c.header('Retry-After', String(retryAfter));
    const message =
      `too many ${surface.toUpperCase()} requests from ${ip}: limit ${settings.perMinute}/minute ` +
      `(burst ${settings.burst}); retry in ${retryAfter} s`;
    return surface === 'operator' || surface === 'mdm'
      ? c.json({ error: message }, 429)
      : c.text(message, 429);
  };
}

export function clientIp(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    // Not served by @hono/node-server (app.request() in a unit test): one shared bucket.
    return 'unknown';
  }
}
