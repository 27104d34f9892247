// The local list's verdict on one token at one station (README "Authorization chain",
// step 1). Negative facts the operator wrote down (blocked, expired, a group that is) are
// final; an active entry in scope allows at once unless it is marked allow_offline, which
// means "ask the upstream first, allow when it cannot answer" (OCPI whitelist
// ALLOWED_OFFLINE). Everything else is left to the cache and the upstream.

/** One acl row joined with its group, as workers/decide.ts reads it. */
export interface AclRow {
  blocked: number;
  expires_at: string | null;
  valid_from: string | null;
  allow_offline: number;
  group_name: string | null;
  /** The OCPI token type the entry is limited to; null = any type. */
  token_type: string | null;
  /** Set when the group row exists. */
  g_name: string | null;
  g_blocked: number | null;
  g_expires_at: string | null;
  g_valid_from: string | null;
  g_allow_offline: number | null;
  scoped: number;
  in_scope: number;
  g_scoped: number;
  g_in_scope: number;
}

export type LocalVerdict =
  /** Decided by the local list. */
  | { final: true; status: 'allowed' | 'not_allowed'; reason: string }
  /**
   * Not decided here. `reason` is the local list's answer when there is no upstream
   * (unknown_token, not_yet_valid, station_not_permitted, or acl_match for an
   * allow_offline entry); `allowOffline` is true for an active entry in scope marked so.
   */
  | { final: false; listed: boolean; reason: string; allowOffline: boolean };

/** An expiry or start that cannot be read fails closed: as if already expired / not yet valid. */
function expired(at: string | null, now: number): boolean {
  if (at === null) return false;
  const t = Date.parse(at);
  return Number.isNaN(t) || t <= now;
}

function notYetValid(at: string | null, now: number): boolean {
  if (at === null) return false;
  const t = Date.parse(at);
  return Number.isNaN(t) || t > now;
}

/**
 * `tokenType` is the request's. An entry limited to another type does not speak for this
 * credential (an app account and a card may share a uid): like an entry out of its station
 * scope, it is left to the upstream, and refused without one.
 */
export function localVerdict(row: AclRow | undefined, now: number, tokenType = 'RFID'): LocalVerdict {
  if (!row) return { final: false, listed: false, reason: 'unknown_token', allowOffline: false };
  const no = (reason: string): LocalVerdict => ({ final: true, status: 'not_allowed', reason });
  if (row.blocked) return no('blocked');
  const grouped = row.group_name !== null;
  // A group edited away behind the CLI's back (sqlite3 without foreign_keys) fails closed.
  if (grouped && row.g_name === null) return no('unknown_group');
  if (grouped && row.g_blocked) return no('group_blocked');
  if (expired(row.expires_at, now)) return no('expired');
  if (grouped && expired(row.g_expires_at, now)) return no('group_expired');
  const open = (reason: string): LocalVerdict => ({ final: false, listed: true, reason, allowOffline: false });
  if (notYetValid(row.valid_from, now)) return open('not_yet_valid');
  if (grouped && notYetValid(row.g_valid_from, now)) return open('group_not_yet_valid');
  // Both scopes apply: a token scoped to some bays in a group scoped to others charges nowhere.
  if (row.token_type !== null && row.token_type !== undefined && row.token_type !== tokenType) return open('token_type_not_permitted');
  if ((row.scoped && !row.in_scope) || (grouped && row.g_scoped && !row.g_in_scope)) return open('station_not_permitted');
  if (row.allow_offline || (grouped && row.g_allow_offline)) return { final: false, listed: true, reason: 'acl_match', allowOffline: true };
  return { final: true, status: 'allowed', reason: 'acl_match' };
}
