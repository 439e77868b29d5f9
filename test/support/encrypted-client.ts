import { Client, Connection } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import { inject } from 'vitest';
import { runtimeSettings } from '../../config/runtime.js';
import { openTokens, payloadCodecOf } from '../../runtime/services.js';

/**
 * A Temporal client of a test's own (another server, a fresh connection), speaking the payload codec
 * as every product process does: histories hold ciphertext, and queries answer in it.
 */
export async function encryptedClient(
  address: string,
  namespace: string,
): Promise<{ client: Client; codec: PayloadCodec; close(): Promise<void> }> {
  const settings = runtimeSettings({ ...process.env, ...inject('stack').env });
  const tokens = await openTokens(settings, ['data']);
  const connection = await Connection.connect({ address });
  const codec = payloadCodecOf(tokens.get('data'));
  const client = new Client({ connection, namespace, dataConverter: { payloadCodecs: [codec] } });
  return {
    client,
    codec,
    async close() {
      await connection.close();
      await tokens.close();
    },
  };
}
