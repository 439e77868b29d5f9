/**
 * The product's one logger: JSON lines (pino) on stdout, or appended to LOG_FILE. Every line is an
 * object a log shipper can index: `level` (name), `time` (ISO), `msg`, and the ids that tie it to
 * the rest of the system (requestId, profile, deviceId, transactionId, workflowId). Child loggers
 * carry those ids; secrets are redacted by key name wherever they appear, so a careless
 * `log.info({ body })` cannot leak a challenge password, a token or a PIN.
 */
import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Key names whose values never reach a log line, at the top level or one object down. */
const SECRET_KEYS = [
  'authorization',
  'challenge',
  'challengePassword',
  'password',
  'pin',
  'secret',
  'clientSecret',
  'token',
  'accessToken',
  'apiKey',
  'apiSecret',
] as const;

export const REDACTED_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
];

let root: Logger | undefined;

/**
 * The process's root logger, made on first use so that LOG_LEVEL and LOG_FILE set before the first
 * line count (tests set them in beforeAll, after the modules were imported).
 */
export function logger(): Logger {
  root ??= pino(
    {
      level: process.env.LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    pino.destination({ dest: process.env.LOG_FILE ?? 1, sync: true, append: true, mkdir: true }),
  );
  return root;
}

/** A logger for one component (`api`, `worker`, `outbox`...): its lines say where they come from. */
export function componentLogger(component: string): Logger {
  return logger().child({ component });
}

const TEMPORAL_LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * Temporal's Runtime logger, written into pino: the SDK's own lines, the workflow and activity
 * context loggers (their metadata carries workflowId, runId, activityType...) and Core's native
 * lines when forwarded, all as JSON lines beside the product's.
 */
export function temporalLogger(base: Logger = componentLogger('temporal')): TemporalLogger {
  const write = (level: LogLevel, message: string, meta?: LogMetadata) => {
    const fields = meta ? Object.fromEntries(Object.entries(meta)) : {};
    base[TEMPORAL_LEVELS[level] ?? 'info'](fields, message);
  };
  return {
    log: write,
    trace: (m, meta) => write('TRACE', m, meta),
    debug: (m, meta) => write('DEBUG', m, meta),
    info: (m, meta) => write('INFO', m, meta),
    warn: (m, meta) => write('WARN', m, meta),
    error: (m, meta) => write('ERROR', m, meta),
  };
}
