import { ApplicationFailure, ActivityFailure } from '@temporalio/common';
import { ServiceError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import {
  INVALID_ARGUMENT,
  INVALID_TRANSITION,
  TRANSITION_CONSTRAINT_VIOLATION,
  TRANSITION_INVALID_DATA,
  UPDATE_REFUSED,
  TERMS_SEATS_IN_USE,
  TERMS_UNCHANGED,
} from '../../workflows/license-contract';
import { AppError } from '../errors';

/** Maps a failed update to the one error shape; refusals carry the workflow's own message. */
export function mapUpdateError(err: unknown, licenseId: string): never {
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause;
    // A local activity's failure arrives as its cause; a scheduled one's wrapped in an ActivityFailure.
    const failure = cause instanceof ActivityFailure ? cause.cause : cause;
    if (failure instanceof ApplicationFailure && failure.type === UPDATE_REFUSED)
      // Our own proof refused: the worker reads other update-origin secrets, or the change waited too long.
      throw new AppError(
        'UNAVAILABLE',
        `The lifecycle of license ${licenseId} did not accept this server's origin proof (the API and worker must share the update-origin secret); nothing changed.`,
      );
    if (cause instanceof ApplicationFailure) {
      if (cause.type === INVALID_TRANSITION) throw new AppError('CONFLICT', cause.message);
      if (cause.type === INVALID_ARGUMENT) throw new AppError('BAD_REQUEST', cause.message);
    }
    // The database refused the transition for good (the activity's failure, local or scheduled):
    // the same request would fail again, so it is the caller's to change, not to retry.
    const refusal = cause instanceof ActivityFailure ? cause.cause : cause;
    if (refusal instanceof ApplicationFailure && refusal.nonRetryable) {
      // The change of terms judged against the row: the activity's message names the count.
      if (refusal.type === TERMS_SEATS_IN_USE) throw new AppError('CONFLICT', refusal.message);
      if (refusal.type === TERMS_UNCHANGED) throw new AppError('BAD_REQUEST', refusal.message);
      if (refusal.type === TRANSITION_INVALID_DATA)
        throw new AppError('BAD_REQUEST', `The change to license ${licenseId} was refused: its data cannot be stored.`);
      if (refusal.type === TRANSITION_CONSTRAINT_VIOLATION)
        throw new AppError(
          'CONFLICT',
          `The change to license ${licenseId} was refused: it conflicts with a rule of the stored data.`,
        );
    }
    if (cause instanceof ActivityFailure)
      throw new AppError('UNAVAILABLE', `The change to license ${licenseId} could not be recorded; try again.`);
  }
  // Temporal unreachable, or the workflow did not answer in time: the change may still apply, so
  // the caller retries (with the same Idempotency-Key to be safe).
  const code = (err as { code?: unknown } | null)?.code;
  if (
    err instanceof ServiceError ||
    err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
    code === 4 ||
    code === 14
  ) {
    throw new AppError(
      'UNAVAILABLE',
      `License ${licenseId}'s lifecycle did not answer in time; retry the request (with the same Idempotency-Key).`,
    );
  }
  throw err;
}
