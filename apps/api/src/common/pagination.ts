import { badRequest } from './errors.js';

export { PageQuery, toInt } from './page.dto.js';

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** A cursor is the (created_at, id) of the last item returned, opaque to clients. */
export interface CursorKey {
  created_at: number;
  id: string;
}

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify([key.created_at, key.id])).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): CursorKey | null {
  if (!cursor) return null;
  try {
    const [created_at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof created_at === 'number' && typeof id === 'string' && id.length <= 36) return { created_at, id };
  } catch {
    // fall through
  }
  throw badRequest('cursor is not a cursor this API returned', [{ field: 'cursor', errors: ['invalid cursor'] }]);
}

export function pageOf<T, R extends CursorKey>(rows: R[], limit: number, map: (row: R) => T): Page<T> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { items: items.map(map), next_cursor: more ? encodeCursor(items[items.length - 1]) : null };
}
