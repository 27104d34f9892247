import type { Sql } from 'postgres';

// Taking over from instances that died. Each live instance holds a session advisory lock
// named after its id (src/queue/pg/queue.ts). An instance whose lock can be taken has no
// session any more: its leases are handed back at once (due now) instead of waiting out
// their expiry, and its service_instance row goes.

export async function releaseDeadInstances(sql: Sql, me: string, now: number): Promise<{ instances: number; released: number }> {
  const others = await sql<Array<{ id: string }>>`SELECT id FROM service_instance WHERE id <> ${me}`;
  let instances = 0;
  let released = 0;
  for (const { id } of others) {
    const n = await sql.begin(async (tx) => {
      const [l] = await tx<Array<{ free: boolean }>>`SELECT pg_try_advisory_xact_lock(hashtext(${`chargegate:${id}`})) AS free`;
      if (!l!.free) return null;
      const r = await tx`UPDATE charging_requests
        SET locked_at = NULL, locked_by = NULL, due_at = ${now}, updated_at = ${now},
            state = CASE WHEN decision_status IS NULL THEN 'queued' ELSE state END
        WHERE locked_by = ${id} AND locked_at IS NOT NULL AND state IN ('queued','authorizing','delivering')`;
      await tx`DELETE FROM service_instance WHERE id = ${id}`;
      return r.count;
    });
    if (n === null) continue;
    instances++;
    released += n;
  }
  return { instances, released };
}
