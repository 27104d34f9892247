// The unit of delivery isolation: a callback URL's origin (scheme, host, port), as the
// WHATWG URL parser spells it: lower-case host, default port left out, IPv6 in brackets.
// Two URLs with the same origin reach the same receiver and share its delivery bound.

export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    // Accepted URLs always parse; this only labels a row an admin wrote by hand.
    return 'invalid:';
  }
}
