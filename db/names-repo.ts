import type { Queryable } from './pool';

export type NamedRow = { id: string; name: string; email: string | null };

/**
 * Who is behind ids that audit rows and lists show: admins and customer users by display name and
 * email, service accounts, customers and agents (by host) by name. One query for any number of ids.
 */
export async function readNames(db: Queryable, ids: readonly string[]): Promise<NamedRow[]> {
  if (ids.length === 0) return [];
  const { rows } = await db.query<NamedRow>(
    `SELECT id, display_name AS name, email FROM admins WHERE id = ANY($1::text[])
     UNION ALL SELECT id, display_name, email FROM customer_users WHERE id = ANY($1::text[])
     UNION ALL SELECT id, name, NULL FROM service_accounts WHERE id = ANY($1::text[])
     UNION ALL SELECT id, name, NULL FROM customers WHERE id = ANY($1::text[])
     UNION ALL SELECT id, coalesce(hostname_hint, ''), NULL FROM agents WHERE id = ANY($1::text[])`,
    [ids],
  );
  return rows;
}
