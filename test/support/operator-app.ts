import type { OperatorDeps } from '../../api/operator/devices.js';
import { operatorRoutes } from '../../api/operator/index.js';
import { loadPkiConfig } from '../../config/load.js';

/**
 * The operator API in-process (`app.request`) without Temporal or a database: for the routes and
 * checks that never reach them (the route table, input validation, authentication).
 */
export function offlineOperatorApp(token: string) {
  return operatorRoutes({
    config: loadPkiConfig(),
    db: undefined as unknown as OperatorDeps['db'],
    temporal: undefined as unknown as OperatorDeps['temporal'],
    env: { OPERATOR_TOKEN: token },
  });
}
