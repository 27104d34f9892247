// Value rules shared by the HTTP schema and the CLI (SPEC §1).

export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
export const TOKEN_RE = /^[A-Za-z0-9._~-]{20,80}$/;
