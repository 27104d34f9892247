// Station scopes in the CLI's output: arrays for scripts (--json), one cell for humans.

/** A station scope as scripts read it (--json): the stations, and whether it is every station. */
export interface Scope {
  /** The stations it is limited to; empty when all_stations (or when scopes leave none). */
  stations: string[];
  all_stations: boolean;
}

/** From SQL's group_concat(';') of a scope: NULL or '*' = every station, '' = none left. */
export function scopeOf(concat: string | null): Scope {
  if (concat === null || concat === '*') return { stations: [], all_stations: true };
  return { stations: concat === '' ? [] : concat.split(';'), all_stations: false };
}

/** The scope in a human table: `*` every station, `a;b`, or `(none)`. */
export function scopeText(s: Scope): string {
  return s.all_stations ? '*' : s.stations.length > 0 ? s.stations.join(';') : '(none)';
}
