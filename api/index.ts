export { buildApp } from './app';
export type { App, AppDeps, BuildAppInput } from './app';
export { startApi } from './server';
export { createTemporal } from './temporal';
export type { TemporalDeps } from './temporal';
export { createLogger, loggerOptions } from './logger';
export { createMetrics } from './metrics';
export { AppError, ERROR_STATUS, errorBody } from './errors';
export type { ErrorCode, ErrorBody } from './errors';
