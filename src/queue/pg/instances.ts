import type { Sql } from 'postgres';

// Taking over from instances that died. Each live instance holds a session advisory lock
// named after its id (src/queue/pg/queue.ts). An instance whose lock can be taken has no
// session any more: its leases are handed back at once (due now) instead of waiting out
// their expiry, and its service_instance and queue_credit rows go.

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
      // The room it held for accepts (src/queue/pg/credits.ts) is free again.
      await tx`DELETE FROM queue_credit WHERE instance_id = ${id}`;
      return r.count;
    });
    if (n === null) continue;
    instances++;
    released += n;
  }
  return { instances, released };
}

/**
 * This instance's liveness: `life`, a client of one connection, holds the advisory lock
 * named after the instance's id; its service_instance row goes with it. check() takes both
 * again when that session was lost (a PostgreSQL restart, a dropped connection: the client
 * reconnects on the next query, without the lock); until then others may take this
 * instance for dead and hand its leases back, whose later writes are then fenced out
 * (duplicates, never loss). A reserved connection of the pool would not do: using one
 * after its session died throws outside any promise in postgres 3.4.9.
 */
export async function holdLife(life: Sql, sql: Sql, me: string, row: { pid: number; host: string; startedAt: number }) {
  const key = `chargegate:${me}`;

  async function take(): Promise<void> {
    await life`SELECT pg_advisory_lock(hashtext(${key}))`;
    await sql`INSERT INTO service_instance (id, pid, host, started_at, heartbeat_at)
      VALUES (${me}, ${row.pid}, ${row.host}, ${row.startedAt}, ${row.startedAt}) ON CONFLICT (id) DO NOTHING`;
  }
  await take();

  return {
    /** Takes the lock again if this instance's session no longer holds it; true when it had to. */
    async check(): Promise<boolean> {
      const [r] = await life<Array<{ held: boolean }>>`SELECT EXISTS (SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
          AND objid = (hashtext(${key})::bigint & 4294967295)::oid) AS held`;
      if (r!.held) return false;
      await take();
      return true;
    },
    release(): Promise<void> {
      return life.end({ timeout: 1 });
    },
  };
}
