// A database URL as logs and messages show it: the password replaced, the rest kept so
// the admin sees which server and database was meant. A leaf: the SQLite-only CLI paths
// use it without loading the PostgreSQL client.

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
