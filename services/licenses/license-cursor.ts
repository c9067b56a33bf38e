import type { LicenseRow } from '../../db/licenses-repo';
import { AppError } from '../errors';

type Cursor = { createdAt: Date; id: string };

export function encodeCursor(r: Pick<LicenseRow, 'created_at' | 'id'>): string {
  return Buffer.from(JSON.stringify([r.created_at.toISOString(), r.id])).toString('base64url');
}
export function decodeCursor(cursor: string): Cursor {
  try {
    const [c, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    const createdAt = new Date(String(c));
    if (
      typeof c !== 'string' ||
      typeof id !== 'string' ||
      !Number.isFinite(createdAt.getTime()) ||
      !/^lic_[A-Za-z0-9_-]{16,64}$/.test(id)
    )
      throw new Error('bad');
    return { createdAt, id };
  } catch {
    throw new AppError('BAD_REQUEST', 'The cursor is not valid; use nextCursor from a previous page.');
  }
}
