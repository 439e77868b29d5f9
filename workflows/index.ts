// Everything the worker's workflow bundle registers.

export { caRotation } from './ca-rotation.js';
export { certificateRevocation } from './certificate-revocation.js';
export { refreshCrls } from './crl-refresh.js';
export { dailyReport } from './daily-report.js';
export { deviceLifecycle } from './device-lifecycle.js';
export { enrollment } from './enrollment.js';
export { intuneRevocationSync } from './intune-revocation-sync.js';
export { serviceCredential } from './service-credential.js';
