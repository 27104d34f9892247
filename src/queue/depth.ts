import type { Queue } from './queue.ts';

// The queue bound (QUEUE_MAX_SIZE) is checked on every accept, so it reads a counter, not
// the table. resync() re-reads the table now and then, which makes the counter exact
// again after other processes (CLI replays, admins) changed the queue.
// With API keys, each client also has a share (QUEUE_MAX_PER_CLIENT, default half the
// bound): one client filling its share gets 503s while the others go on.

type Counts = Pick<Queue, 'countOpen' | 'countOpenByClient'>;

export async function createDepth(queue: Counts, max: number, opts: { maxPerClient?: number | null } = {}) {
  const perClient = Math.max(1, opts.maxPerClient ?? Math.ceil(max / 2));
  // Requests not yet finished, counting those reserved but not committed yet.
  let open = await queue.countOpen();
  // Reserved rows whose group commit has not happened yet (not visible in the table).
  let uncommitted = 0;
  let byClient = await queue.countOpenByClient();
  const uncommittedByClient = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string, d: number) => {
    const n = (m.get(k) ?? 0) + d;
    if (n <= 0) m.delete(k);
    else m.set(k, n);
  };
  return {
    /** Reserves room for one request; 'full' at the bound, 'share' when the client is at its share. */
    tryReserve(client: string | null = null): 'ok' | 'full' | 'share' {
      if (open >= max) return 'full';
      if (client !== null && (byClient.get(client) ?? 0) >= perClient) return 'share';
      open++;
      uncommitted++;
      if (client !== null) {
        bump(byClient, client, 1);
        bump(uncommittedByClient, client, 1);
      }
      return 'ok';
    },
    /** The reserved row is on disk now. */
    committed(client: string | null = null): void {
      uncommitted--;
      if (client !== null) bump(uncommittedByClient, client, -1);
    },
    /** The reserved row did not commit. */
    unreserve(client: string | null = null): void {
      open--;
      uncommitted--;
      if (client !== null) {
        bump(byClient, client, -1);
        bump(uncommittedByClient, client, -1);
      }
    },
    /** Requests that reached delivered or failed: a count, or their clients. */
    finished(done: number | Array<string | null>): void {
      if (typeof done === 'number') {
        open -= done;
        return;
      }
      open -= done.length;
      for (const c of done) if (c !== null) bump(byClient, c, -1);
    },
    /**
     * Reads committed state, adds what is reserved but still in flight. On a remote
     * database a commit landing during the read may be counted twice until the next resync.
     */
    async resync(): Promise<void> {
      const [n, by] = await Promise.all([queue.countOpen(), queue.countOpenByClient()]);
      open = n + uncommitted;
      byClient = by;
      for (const [c, n] of uncommittedByClient) bump(byClient, c, n);
    },
    get value(): number {
      return open;
    },
    /** Open requests of one client (tests, metrics). */
    of(client: string): number {
      return byClient.get(client) ?? 0;
    },
    max,
    maxPerClient: perClient,
  };
}

export type Depth = Awaited<ReturnType<typeof createDepth>>;
