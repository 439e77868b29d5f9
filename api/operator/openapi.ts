/**
 * The operator API described as OpenAPI 3.1, served at GET /operator/openapi.json (operator
 * credentials, like every route here). Written by hand beside the routes, with request bodies and
 * query strings generated from the same zod schemas the routes parse with, so a field cannot be
 * accepted without being documented. test/unit/operator-openapi.test.ts checks that every route the
 * operator app registers is in here, and nothing else.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { OPERATOR_REVOCATION_REASONS } from '../../workflows/definitions.js';
import type { OperatorEnv } from '../http/auth.js';
import { exportQuery as auditExportQuery } from './audit.js';
import { listQuery as enrollmentListQuery } from './enrollments.js';
import { listQuery as eventListQuery } from './events.js';
import { listQuery as reportListQuery, reportQuery } from './reports.js';
import {
  challengeBody,
  compromisedKeyBody,
  decisionBody,
  deviceSearchQuery,
  rejectBody,
  revokeBody,
  revokeCertificateBody,
  rotationBody,
} from './schemas.js';

type Json = Record<string, unknown>;

/** JSON Schema 2020-12 (OpenAPI 3.1's dialect) of what a request may send. */
const schemaOf = (schema: z.ZodType): Json => {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  return rest;
};

const jsonBody = (schema: z.ZodType, required = false): Json => ({
  required,
  content: { 'application/json': { schema: schemaOf(schema) } },
});

/** Query parameters from a zod object, one per property. */
function queryParameters(schema: z.ZodObject): Json[] {
  const json = schemaOf(schema) as { properties: Record<string, Json>; required?: string[] };
  return Object.entries(json.properties).map(([name, property]) => ({
    name,
    in: 'query',
    required: json.required?.includes(name) ?? false,
    schema: property,
  }));
}

const pathParameter = (name: string, description: string): Json => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: { type: 'string' },
});

const PROFILE = pathParameter('profile', 'The profile name (config/pki.json).');
const DEVICE = pathParameter('deviceId', 'The verified device id (URL-encoded).');
const SERIAL = pathParameter('serial', 'Certificate serial, hex, any case, colons allowed.');
const WORKFLOW_ID = pathParameter(
  'workflowId',
  'The enrollment workflow id, `enroll/<profile>/<escaped transactionID>` (URL-encode it, or send it as is).',
);

const error = (description: string): Json => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});
const ok = (description: string): Json => ({
  description,
  content: { 'application/json': { schema: { type: 'object' } } },
});
/** Answers every operator route can give: bad input, authentication, rate limit, body size. */
const COMMON_ERRORS = {
  '400': error('Bad input: the message names what is wrong.'),
  '401': error('Missing or wrong operator credentials.'),
  '413': error('Request body too large.'),
  '429': error('Rate limited.'),
  '503': error('Operator API disabled (OPERATOR_TOKEN not set).'),
};

const operation = (spec: {
  summary: string;
  tags: string[];
  parameters?: Json[];
  requestBody?: Json;
  responses: Record<string, Json>;
}): Json => ({ ...spec, responses: { ...spec.responses, ...COMMON_ERRORS } });

const decision = (action: 'approve' | 'retry' | 'reject', summary: string): Json => ({
  post: operation({
    summary,
    tags: ['enrollments'],
    parameters: [WORKFLOW_ID],
    requestBody: action === 'reject' ? jsonBody(rejectBody, true) : jsonBody(decisionBody),
    responses: {
      '202': ok('Signal sent.'),
      '404': error('No such enrollment workflow.'),
      '409': error('The enrollment has ended, or does not wait for this decision.'),
    },
  }),
});

/** The document; `serverUrl` is where this listener answers. */
export function operatorOpenApi(serverUrl?: string): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'device-pki operator API',
      version: '1',
      description:
        'Operators act on devices, certificates, enrollments and the event outbox. Every call is audited ' +
        'with the authenticated identity. Errors are JSON `{"error": "..."}`.',
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    security: [{ operatorToken: [] }, { operatorCertificate: [] }],
    components: {
      securitySchemes: {
        operatorToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'OPERATOR_TOKEN (OPERATOR_AUTH=token).',
        },
        operatorCertificate: {
          type: 'mutualTLS',
          description: 'A client certificate of the operators profile (OPERATOR_AUTH=client-certificate).',
        },
      },
      schemas: {
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
        RevocationReason: { type: 'string', enum: [...OPERATOR_REVOCATION_REASONS] },
      },
    },
    paths: {
      '/operator/openapi.json': {
        get: operation({
          summary: 'This document.',
          tags: ['meta'],
          responses: { '200': ok('OpenAPI 3.1 document.') },
        }),
      },
      '/operator/devices': {
        get: operation({
          summary: 'Devices whose id starts with q (all devices when q is empty), optionally in one profile.',
          tags: ['devices'],
          parameters: queryParameters(deviceSearchQuery),
          responses: { '200': ok('The matching devices.'), '400': error('Bad query or unknown profile.') },
        }),
      },
      '/operator/devices/{profile}/{deviceId}': {
        get: operation({
          summary:
            "A device: its lifecycle's state, its row (status, block), every certificate and its latest audit events.",
          tags: ['devices'],
          parameters: [PROFILE, DEVICE],
          responses: { '200': ok('The device.'), '404': error('Unknown profile or device.') },
        }),
      },
      '/operator/devices/{profile}/{deviceId}/revoke': {
        post: operation({
          summary: 'Revoke every valid certificate of the device and block it until readmitted.',
          tags: ['devices'],
          parameters: [PROFILE, DEVICE],
          requestBody: jsonBody(revokeBody),
          responses: {
            '202': ok('Revocation sent to the device lifecycle.'),
            '404': error('Unknown profile or device.'),
          },
        }),
      },
      '/operator/devices/{profile}/{deviceId}/readmit': {
        post: operation({
          summary: 'Lift the block of a revoked or removed device.',
          tags: ['devices'],
          parameters: [PROFILE, DEVICE],
          requestBody: jsonBody(decisionBody),
          responses: {
            '202': ok('Readmission sent to the device lifecycle.'),
            '404': error('Unknown profile or device.'),
          },
        }),
      },
      '/operator/certificates/{serial}': {
        get: operation({
          summary: 'One certificate by serial: where it is, its state and revocation.',
          tags: ['certificates'],
          parameters: [
            SERIAL,
            {
              name: 'issuingCa',
              in: 'query',
              required: false,
              description: 'The issuing CA, when the serial exists under several.',
              schema: { type: 'string' },
            },
          ],
          responses: {
            '200': ok('The certificate.'),
            '404': error('No certificate with this serial.'),
            '409': error('The serial exists under several CAs: name one.'),
          },
        }),
      },
      '/operator/certificates/{serial}/revoke': {
        post: operation({
          summary: 'Revoke one certificate by serial (idempotent).',
          tags: ['certificates'],
          parameters: [SERIAL],
          requestBody: jsonBody(revokeCertificateBody),
          responses: {
            '200': ok('Revoked.'),
            '202': ok('Revoking: it finishes in the background.'),
            '404': error('No certificate with this serial.'),
            '409': error('Several CAs, or the profile is no longer configured.'),
          },
        }),
      },
      '/operator/enrollments': {
        get: operation({
          summary: 'Enrollments that need a person (escalated, awaiting approval) or failed.',
          tags: ['enrollments'],
          parameters: queryParameters(enrollmentListQuery),
          responses: { '200': ok('The enrollments and the visibility query used.') },
        }),
      },
      '/operator/enrollments/{workflowId}/approve': decision(
        'approve',
        'Approve an enrollment awaiting approval (it replaces the device certificate).',
      ),
      '/operator/enrollments/{workflowId}/retry': decision(
        'retry',
        'Run the failed step of an escalated enrollment again.',
      ),
      '/operator/enrollments/{workflowId}/reject': decision(
        'reject',
        'Fail an escalated or awaiting enrollment with a reason.',
      ),
      '/operator/audit': {
        get: {
          ...operation({
            summary:
              'The audit trail from..to (at most 31 days) as JSON lines, oldest first, for SIEMs; optionally one profile or action.',
            tags: ['audit'],
            parameters: queryParameters(auditExportQuery),
            responses: {},
          }),
          responses: {
            '200': {
              description: 'One audit event per line.',
              content: { 'application/x-ndjson': { schema: { type: 'string' } } },
            },
            ...COMMON_ERRORS,
          },
        },
      },
      '/operator/keys': {
        get: operation({
          summary:
            "Every key of every HSM token (label, role, algorithm, created, NIST SP 800-57 state, certificate and expiry, signatures made), as each token's own process last listed it (`observedAt`).",
          tags: ['keys'],
          responses: { '200': ok('The key inventory.') },
        }),
      },
      '/operator/keys/compromised': {
        post: operation({
          summary: "Mark a key compromised (an operator's finding; listings never clear it). Audited.",
          tags: ['keys'],
          requestBody: jsonBody(compromisedKeyBody, true),
          responses: {
            '200': ok('The key, now compromised.'),
            '404': error('No such key in the inventory.'),
          },
        }),
      },
      '/operator/reports': {
        get: operation({
          summary: 'The dates of the stored daily reports, newest first.',
          tags: ['reports'],
          parameters: queryParameters(reportListQuery),
          responses: { '200': ok('The report dates.') },
        }),
      },
      '/operator/reports/run': {
        post: operation({
          summary: 'Run the daily report now (the report workflow); answers the stored report.',
          tags: ['reports'],
          requestBody: jsonBody(decisionBody),
          responses: { '201': ok('The report, its workflow id and whether it was e-mailed.') },
        }),
      },
      '/operator/reports/{file}': {
        get: {
          ...operation({
            summary:
              'One daily report: `YYYY-MM-DD` or `YYYY-MM-DD.json` as JSON, `YYYY-MM-DD.csv` (or ?format=csv) as CSV.',
            tags: ['reports'],
            parameters: [
              pathParameter('file', 'The report date (YYYY-MM-DD), optionally with .json or .csv.'),
              ...queryParameters(reportQuery),
            ],
            responses: { '404': error('No report for that date.') },
          }),
          responses: {
            '200': {
              description: 'The report.',
              content: {
                'application/json': { schema: { type: 'object' } },
                'text/csv': { schema: { type: 'string' } },
              },
            },
            '404': error('No report for that date.'),
            ...COMMON_ERRORS,
          },
        },
      },
      '/operator/cas/{profile}/rotation': {
        post: operation({
          summary:
            "Start the rotation of the profile's issuing CA (workflow ca/<profile>/rotation): create and announce the next CA, promote it at promoteAt (default: at once), retire the old CA when its last certificate expires, destroy its key after retentionSeconds (default 30 days).",
          tags: ['cas'],
          parameters: [PROFILE],
          requestBody: jsonBody(rotationBody),
          responses: {
            '201': ok('Started: its workflow id.'),
            '400': error('The profile has an upstream CA, or the body is invalid.'),
            '404': error('Unknown profile.'),
            '409': error('A rotation of this profile is already running.'),
          },
        }),
        get: operation({
          summary:
            'The running (or last) rotation of the profile: state, generations, promotion and retirement times.',
          tags: ['cas'],
          parameters: [PROFILE],
          responses: { '200': ok('Its state.'), '404': error('No rotation of this profile.') },
        }),
      },
      '/operator/cas/{profile}/rotation/pause': {
        post: operation({
          summary: 'Hold the rotation before its next step (timers included) until it is resumed.',
          tags: ['cas'],
          parameters: [PROFILE],
          requestBody: jsonBody(decisionBody),
          responses: { '202': ok('Signalled.'), '404': error('No rotation of this profile is running.') },
        }),
      },
      '/operator/cas/{profile}/rotation/resume': {
        post: operation({
          summary: 'Let a paused rotation go on.',
          tags: ['cas'],
          parameters: [PROFILE],
          requestBody: jsonBody(decisionBody),
          responses: { '202': ok('Signalled.'), '404': error('No rotation of this profile is running.') },
        }),
      },
      '/operator/events': {
        get: operation({
          summary: 'Event deliveries by state (dead letters wait for a person).',
          tags: ['events'],
          parameters: queryParameters(eventListQuery),
          responses: { '200': ok('The deliveries.') },
        }),
      },
      '/operator/events/{id}/redeliver': {
        post: operation({
          summary: 'Deliver every undelivered target of an event again, from now.',
          tags: ['events'],
          parameters: [pathParameter('id', 'The event id (URL-encode it, or send it as is).')],
          requestBody: jsonBody(decisionBody),
          responses: {
            '200': ok('Nothing to deliver again: every target has it.'),
            '202': ok('Queued for delivery.'),
            '404': error('No such event.'),
          },
        }),
      },
      '/operator/profiles/{profile}/challenges': {
        post: operation({
          summary: 'Create a one-time enrollment challenge, for a named device or none.',
          tags: ['challenges'],
          parameters: [PROFILE],
          requestBody: jsonBody(challengeBody),
          responses: {
            '201': ok('The challenge (shown once) and when it expires.'),
            '404': error('Unknown profile.'),
            '409': error('The profile does not use one-time challenges.'),
          },
        }),
      },
    },
  };
}

export function openApiRoutes(): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  app.get('/operator/openapi.json', (c) => c.json(operatorOpenApi(new URL(c.req.url).origin)));
  return app;
}
