/** Request shapes shared by the operator routes. */
import { z } from 'zod';
import { deviceIdProblem } from '../../pki/admission/identity.js';
import { OPERATOR_REVOCATION_REASONS } from '../../workflows/definitions.js';

export const deviceIdSchema = z.string().superRefine((value, ctx) => {
  const problem = deviceIdProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const profileNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'profile must be lower-case letters, digits and dashes');

const by = z.string().trim().min(1).max(128);
const note = z.string().trim().min(1).max(500);

export const revokeBody = z
  .object({
    reason: z.enum(OPERATOR_REVOCATION_REASONS, {
      error: `reason must be one of ${OPERATOR_REVOCATION_REASONS.join(', ')}`,
    }),
    by,
  })
  .partial()
  .strict();

export const revokeCertificateBody = revokeBody
  .extend({ issuingCa: z.string().min(1).max(256).optional() })
  .strict();

export const decisionBody = z.object({ by, note }).partial().strict();
export const rejectBody = z.object({ reason: z.string().trim().min(1).max(255), by: by.optional() }).strict();

export const challengeBody = z
  .object({
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86400)
      .optional(),
    issuedTo: z.string().min(1).max(512).optional(),
    /** The device the challenge vouches for; without it the device names itself. */
    deviceId: deviceIdSchema.optional(),
  })
  .strict();

export const deviceSearchQuery = z
  .object({
    q: z.string().max(128).default(''),
    profile: profileNameSchema.optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
  })
  .strict();

export const compromisedKeyBody = z
  .object({
    token: z.string().trim().min(1).max(128),
    label: z.string().trim().min(1).max(256),
    by: by.optional(),
    note: note.optional(),
  })
  .strict();
export const rotationBody = z
  .object({
    promoteAt: z.iso.datetime({ offset: true, error: 'promoteAt must be an ISO 8601 date-time' }),
    retentionSeconds: z
      .number()
      .int()
      .min(0)
      .max(10 * 365 * 86_400),
    settleSeconds: z.number().int().min(0).max(86_400),
    by,
  })
  .partial()
  .strict();
