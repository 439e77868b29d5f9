/**
 * What a compromised `pki` worker can do with its Temporal access: run workflow code of its own that
 * schedules the HSM host's `issueCertificate` with whatever input it likes. Used by
 * test/e2e/key-custody.test.ts to show the HSM host refuses every forged request.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';

const { issueCertificate } = proxyActivities<{ issueCertificate(input: unknown): Promise<unknown> }>({
  taskQueue: 'pki-hsm',
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
});

export async function forgeIssuance(
  input: unknown,
): Promise<{ issued: unknown } | { refused: string; type: string | undefined }> {
  try {
    return { issued: await issueCertificate(input) };
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof ApplicationFailure) return { refused: cause.message, type: cause.type ?? undefined };
    throw err;
  }
}
