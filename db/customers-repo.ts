import type { Queryable } from './pool';

export type CustomerRow = {
  id: string;
  name: string;
  active: boolean;
  created_at: Date;
  updated_at: Date;
  deactivated_at: Date | null;
};

export async function insertCustomer(db: Queryable, c: { id: string; name: string; now: Date }): Promise<CustomerRow> {
  const { rows } = await db.query<CustomerRow>(
    'INSERT INTO customers (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING *',
    [c.id, c.name, c.now],
  );
  return rows[0]!;
}

export async function findCustomer(db: Queryable, id: string): Promise<CustomerRow | undefined> {
  const { rows } = await db.query<CustomerRow>('SELECT * FROM customers WHERE id = $1', [id]);
  return rows[0];
}

/** Newest first. */
export async function listCustomers(db: Queryable, opts: { limit: number }): Promise<CustomerRow[]> {
  const { rows } = await db.query<CustomerRow>('SELECT * FROM customers ORDER BY created_at DESC, id DESC LIMIT $1', [
    opts.limit,
  ]);
  return rows;
}

/** Returns false when the customer was already inactive. */
export async function deactivateCustomer(db: Queryable, id: string, now: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE customers SET active = false, deactivated_at = $2, updated_at = $2 WHERE id = $1 AND active',
    [id, now],
  );
  return (rowCount ?? 0) > 0;
}
