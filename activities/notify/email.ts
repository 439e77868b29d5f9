/** Operator e-mail over SMTP (nodemailer). */
import nodemailer from 'nodemailer';
import { secretFromEnv } from '../../config/load.js';
import type { NotificationConfig } from '../../config/profile-types.js';

export type EmailConfig = NonNullable<NotificationConfig['email']>;

export interface OperatorMessage {
  subject: string;
  text: string;
  /** An HTML alternative (the daily report); the text part stays for clients that want it. */
  html?: string;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Throws when the server does not accept the message, so the activity is retried. */
export async function sendOperatorEmail(
  cfg: EmailConfig,
  message: OperatorMessage,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ messageId: string }> {
  const auth =
    cfg.userEnv && cfg.passwordEnv
      ? { user: secretFromEnv(cfg.userEnv, env), pass: secretFromEnv(cfg.passwordEnv, env) }
      : undefined;
  const transport = nodemailer.createTransport({
    host: cfg.smtpHost,
    port: cfg.smtpPort,
    secure: cfg.secure,
    // A local sink or relay on loopback has no certificate worth checking: skip STARTTLS there.
    // Anywhere else STARTTLS is used when offered, and required before sending credentials.
    ignoreTLS: !cfg.secure && LOOPBACK.has(cfg.smtpHost),
    requireTLS: !cfg.secure && !LOOPBACK.has(cfg.smtpHost) && auth !== undefined,
    ...(auth ? { auth } : {}),
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  });
  try {
    const info = await transport.sendMail({
      from: cfg.from,
      to: cfg.to,
      subject: message.subject,
      text: message.text,
      ...(message.html ? { html: message.html } : {}),
    });
    return { messageId: info.messageId };
  } finally {
    transport.close();
  }
}
