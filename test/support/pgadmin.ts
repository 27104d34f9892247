import postgres from 'postgres';

// Where the tests find a PostgreSQL server (an admin connection), and whether it answers:
// its own file so that asking costs no throwaway database (engines.ts makes one per file).

export const PG_ADMIN_URL = process.env.CHARGEGATE_TEST_PG || 'postgres://postgres@127.0.0.1:5432/postgres';

export async function pgReachable(): Promise<boolean> {
  const sql = postgres(PG_ADMIN_URL, { max: 1, connect_timeout: 2, onnotice: () => undefined });
  try {
    await sql`SELECT 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}
