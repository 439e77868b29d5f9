/**
 * What the Temporal Web UI's work list says about each workflow, so an operator can tell which
 * device it was and how it ended without opening it: the one-line summary and the details set at
 * start (Temporal user metadata, shown in the list and on the workflow's page), and the outcome line
 * an enrollment writes to the PkiOutcome search attribute when it ends. Pure: the API, the
 * activities and the workflow code all use it.
 *
 * The summary and details travel through the payload codec like every payload (readable where the
 * Web UI has the codec endpoint); PkiOutcome, like the other search attributes, is plain text.
 */
import type { EnrollmentInput, EnrollmentOutcome } from './definitions.js';

/** Temporal's limit for a static summary. */
const SUMMARY_BYTES = 200;
/** Keyword search attribute values stay short enough to read in a list column. */
const OUTCOME_CHARS = 200;

/** `laptop-001 (claimed) · profile devices · PKCSReq`: the device is only claimed until verified. */
export function enrollmentSummary(input: EnrollmentInput): string {
  const kind = input.renewalSigner ? `${input.messageType}, signed by a certificate` : input.messageType;
  return clip(`${input.claimedDeviceId} (claimed) · profile ${input.profile} · ${kind}`, SUMMARY_BYTES);
}

/** Markdown for the workflow's page: the request as the device sent it. */
export function enrollmentDetails(input: EnrollmentInput): string {
  const key = input.csrSummary.publicKey;
  const keyText =
    key.algorithm === 'rsa' ? `RSA ${key.bits}` : key.algorithm === 'ec' ? `EC ${key.curve}` : key.oid;
  return [
    `**Transaction** ${code(input.transactionId)}`,
    `**Profile** ${code(input.profile)}`,
    `**Claimed device** ${code(input.claimedDeviceId)} (the CSR's CN; the verified device is the DeviceId search attribute)`,
    `**Request** ${input.messageType}, key ${keyText}, subject ${code(input.csrSummary.subject)}`,
    input.renewalSigner ? '**Renewal**: signed by an existing certificate' : '**New enrollment**',
  ].join('\n\n');
}

/** `laptop-001 · profile devices · certificate life`. */
export function lifecycleSummary(profile: string, deviceId: string): string {
  return clip(`${deviceId} · profile ${profile} · certificate life`, SUMMARY_BYTES);
}

/** The PkiOutcome of a finished enrollment: `Issued: serial ..., valid until ...` or `Refused: <reason>`. */
export function outcomeLine(outcome: EnrollmentOutcome): string {
  const line =
    outcome.status === 'SUCCESS'
      ? `Issued: serial ${outcome.issued.serialHex}, valid until ${outcome.issued.notAfter.slice(0, 10)}`
      : `Refused: ${outcome.reason}`;
  return line.length > OUTCOME_CHARS ? `${line.slice(0, OUTCOME_CHARS - 1)}…` : line;
}

/** A code span that cannot be broken out of by the value itself. */
function code(value: string): string {
  return `\`${value.replaceAll('`', "'")}\``;
}

/** At most `bytes` UTF-8 bytes, cut on a character boundary, with an ellipsis when cut. */
function clip(text: string, bytes: number): string {
  const encoder = new TextEncoder();
  if (encoder.encode(text).length <= bytes) return text;
  let out = '';
  for (const char of text) {
    if (encoder.encode(`${out}${char}…`).length > bytes) break;
    out += char;
  }
  return `${out}…`;
}
