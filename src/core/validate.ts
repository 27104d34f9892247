// Value rules shared by the HTTP schema and the CLI (SPEC §1).

export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
export const TOKEN_RE = /^[A-Za-z0-9._~-]{20,80}$/;

/** OCPI 2.2.1 TokenType values a request may name (SPEC §1); RFID when it names none. */
export const TOKEN_TYPES = ['RFID', 'APP_USER', 'AD_HOC_USER', 'OTHER'] as const;
export const DEFAULT_TOKEN_TYPE = 'RFID';

/**
 * Characters a callback URL must not contain: C0 controls, space, DEL, C1 controls, and
 * every other Unicode space. The WHATWG parser would silently drop CR, LF and TAB
 * anywhere, trim leading and trailing C0 and spaces, and percent-encode the rest, so the
 * URL POSTed would differ from the one the client sent and the service stored (SPEC §2:
 * used exactly as given, refused rather than repaired). A client that needs one of them
 * sends it percent-encoded (%20, %0D), which is kept as it is.
 */
export const URL_FORBIDDEN_CHAR_RE = /[\x00-\x20\x7F-\x9F\s]/;
