import { z } from 'zod';
import { ERROR_STATUS } from './errors';

/** The one error shape, for every non-2xx response in the OpenAPI document. */
export const errorSchema = z.object({
  error: z.object({
    code: z.enum(Object.keys(ERROR_STATUS) as [keyof typeof ERROR_STATUS, ...Array<keyof typeof ERROR_STATUS>]),
    message: z.string(),
    requestId: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});

/**
 * The body of a state-changing route that takes no payload: nothing, or `{}` (browsers send `{}`,
 * as JSON is part of the CSRF rule). Anything else is refused rather than ignored.
 */
export const emptyBody = z.strictObject({}).nullish();
