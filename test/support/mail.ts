import { simpleParser } from 'mailparser';
import type { SunkMessage } from '../fakes/smtp-sink.js';

/** The HTML part of a message the SMTP sink received, decoded (mailparser: MIME, transfer encodings). */
export async function htmlOf(message: SunkMessage): Promise<string> {
  const parsed = await simpleParser(message.raw);
  return typeof parsed.html === 'string' ? parsed.html : '';
}
