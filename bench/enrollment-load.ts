/**
 * SCEP enrollments as load: each request is a new device (distinct CN, random transactionID) whose
 * key comes from a pre-generated pool. What came back is kept, so the accounting can later compare
 * it with what the server recorded.
 */
import type { Outcome } from './load-generator.js';
import type { DeviceKey, EnrollResult, ScepClient } from './scep-client/index.js';

/** One request as sent and as answered. */
export interface EnrollmentRecord {
  deviceId: string;
  transactionId: string;
  status: EnrollResult['status'];
  /** Serial (lower-case hex) of the certificate handed back, for SUCCESS. */
  serialHex?: string;
}

export class EnrollmentLoad {
  readonly records: EnrollmentRecord[] = [];
  private sequence = 0;

  /**
   * @param deviceIdPrefix every device id of this load starts with it (make it unique per run, so a
   *   long-lived database or cluster can be checked for this run's rows only)
   */
  constructor(
    private readonly opts: {
      client: ScepClient;
      keys: DeviceKey[];
      challengePassword: string;
      deviceIdPrefix: string;
    },
  ) {
    if (opts.keys.length === 0) throw new Error('EnrollmentLoad needs at least one device key');
  }

  /** For runLevel: one enrollment of a new device. */
  readonly operation = async (): Promise<Outcome> => {
    const n = this.sequence++;
    const deviceId = `${this.opts.deviceIdPrefix}${n}`;
    const result = await this.opts.client.enroll({
      key: this.opts.keys[n % this.opts.keys.length]!,
      commonName: deviceId,
      challengePassword: this.opts.challengePassword,
    });
    this.records.push({
      deviceId,
      transactionId: result.transactionId,
      status: result.status,
      ...(result.status === 'SUCCESS' ? { serialHex: result.serialHex } : {}),
    });
    return outcomeOf(result);
  };
}

export function outcomeOf(result: EnrollResult): Outcome {
  switch (result.status) {
    case 'SUCCESS':
      return { kind: 'ok' };
    case 'FAILURE':
      return { kind: 'failed', reason: `FAILURE ${result.failInfo ?? '(no failInfo)'}` };
    case 'PENDING':
      return { kind: 'pending', reason: `still PENDING after ${result.polls} polls` };
    case 'ERROR':
      return { kind: 'failed', reason: `${result.stage}: ${result.message}` };
  }
}
