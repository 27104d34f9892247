import type { TransactionSql } from 'postgres';

// A table kept to at most `max` rows, oldest (by `order`) trimmed first: authorizer_cache
// (AUTHORIZER_CACHE_MAX_ENTRIES, least recently used) and unknown_tokens (UNKNOWN_TOKENS_MAX,
// least recently seen), as SQLite's authcache.ts keeps them. Several instances write the
// same table and none sees the others' new rows, so an instance does not only count after
// its own estimate passes max (as SQLite's one writer does) but also after every `step` rows
// it added itself: between two counts the table holds at most max + instances x step rows,
// and each count trims it back to max. The count runs in the writing transaction; the trim
// skips rows another instance is trimming (SKIP LOCKED), so two trims at once may remove a
// few more than needed: a smaller cache, never a larger one.

export interface PgBound {
  /** Counts and trims when due; `added`: rows this transaction inserted. */
  after(tx: TransactionSql, added: number): Promise<void>;
}

export function createPgBound(table: 'authorizer_cache' | 'unknown_tokens', order: string, max: number): PgBound {
  const step = Math.max(1, Math.floor(max / 16));
  // Rows at the last count (null: not counted yet) and rows this instance added since.
  let counted: number | null = null;
  let since = 0;
  return {
    async after(tx, added) {
      since += added;
      if (counted !== null && counted + since <= max && since < step) return;
      const [r] = await tx.unsafe<Array<{ n: number }>>(`SELECT COUNT(*)::int AS n FROM ${table}`);
      let n = r!.n;
      if (n > max) {
        const gone = await tx.unsafe(`DELETE FROM ${table} WHERE ctid IN (
          SELECT ctid FROM ${table} ORDER BY ${order} LIMIT $1 FOR UPDATE SKIP LOCKED)`, [n - max]);
        n -= gone.count;
      }
      counted = n;
      since = 0;
    },
  };
}
