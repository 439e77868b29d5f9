/**
 * The service credential workflows (workflows/service-credential.ts), started by every `pki` worker
 * for each credential the configuration names; a running one is left as it is (idempotent).
 */
import type { Client } from '@temporalio/client';
import { serviceCredentialsOf } from '../activities/service-credentials/registry.js';
import type { PkiConfig } from '../config/profile-types.js';
import {
  PkiProfileKey,
  PkiStatusKey,
  serviceCredentialWorkflowId,
  TASK_QUEUE,
} from '../workflows/definitions.js';
import type { serviceCredential } from '../workflows/service-credential.js';

export async function ensureServiceCredentialWorkflows(client: Client, config: PkiConfig): Promise<string[]> {
  const ids: string[] = [];
  for (const entry of serviceCredentialsOf(config)) {
    const workflowId = serviceCredentialWorkflowId(entry.name);
    await client.workflow.start<typeof serviceCredential>('serviceCredential', {
      workflowId,
      taskQueue: TASK_QUEUE,
      args: [{ name: entry.name, profile: entry.usedBy.name }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [
        { key: PkiProfileKey, value: entry.usedBy.name },
        { key: PkiStatusKey, value: 'Pending' },
      ],
    });
    ids.push(workflowId);
  }
  return ids;
}
