import type { Sql } from 'postgres';
import type { RequestView } from '../../core/types.ts';
import { REQUEST_COLUMNS, requestView, type AttemptRow, type RequestRow } from '../reads.ts';

// One request as GET /api/v1/charging-session/{id} shows it, read from PostgreSQL: shared by
// the service (src/queue/pg/queue.ts) and `chargegate requests show`, so both print the same.

export async function pgRequestView(sql: Sql, id: string): Promise<RequestView | null> {
  const [r] = await sql.unsafe<RequestRow[]>(`SELECT ${REQUEST_COLUMNS} FROM charging_requests WHERE id = $1`, [id], { prepare: true });
  if (!r) return null;
  const a = await sql<AttemptRow[]>`SELECT attempt, started_at, duration_ms, http_status, error, outcome
    FROM callback_attempts WHERE request_id = ${id} ORDER BY attempt, id`;
  return requestView(r, a);
}
