import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_BUNDLE } from './workers.js';

/** Prebuilds the workflow bundle so production workers start fast and run exactly what was reviewed. */
const { code } = await bundleWorkflowCode({
  workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
});
mkdirSync(dirname(WORKFLOW_BUNDLE), { recursive: true });
writeFileSync(WORKFLOW_BUNDLE, code);
console.log(`workflow bundle written to ${WORKFLOW_BUNDLE} (${code.length} bytes)`);
