import type { Context } from 'hono';
import type { Registry } from 'prom-client';
import { processRegistry } from './process.js';

/**
 * The Prometheus text exposition of this process's metrics and any others (the API adds the fleet
 * registry). Concatenated rather than merged: the registries hold distinct names by construction.
 */
export async function metricsResponse(c: Context, extra: Registry[] = []): Promise<Response> {
  const registries = [processRegistry, ...extra];
  const texts = await Promise.all(registries.map((r) => r.metrics()));
  return c.body(texts.join('\n'), 200, { 'content-type': processRegistry.contentType });
}
