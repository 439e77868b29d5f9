// Everything the worker's workflow bundle registers.
export { deviceLifecycle } from './device-lifecycle.js';
export { enrollment } from './enrollment.js';
