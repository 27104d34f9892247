import { isUtf8 } from 'node:buffer';

// The request body as I-JSON (RFC 7493): UTF-8 JSON text with no duplicate member names
// and no unpaired surrogates. A body outside it is refused rather than repaired: JSON.parse
// keeps the last of two "station_id" members where a proxy or a log reader may keep the
// first, and invalid UTF-8 would be stored as U+FFFD, a URL the client never sent. A
// "__proto__" member is refused too, so no later merge can turn it into a prototype.

export type Parsed = { ok: true; value: unknown } | { ok: false; message: string };

const fail = (message: string): Parsed => ({ ok: false, message });

/** Parses a raw body (already size-capped and decompressed by the framework). */
export function parseBody(buf: Buffer | null | undefined): Parsed {
  if (!buf || buf.length === 0) return fail('the request body is empty; expected a JSON object');
  if (!isUtf8(buf)) return fail('the request body is not valid UTF-8');
  const text = buf.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail('the request body is not valid JSON');
  }
  const problem = scan(text);
  return problem ? fail(problem) : { ok: true, value };
}

const WS = new Set([' ', '\t', '\n', '\r']);

/**
 * Walks JSON text that JSON.parse accepted, with an explicit stack (deep nesting cannot
 * overflow it), and names the first member or string I-JSON does not allow.
 */
function scan(text: string): string | null {
  // One entry per open container: the member names of an object, null for an array.
  const stack: Array<Set<string> | null> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') stack.push(new Set());
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const literal = text.slice(i, j + 1);
      const str = literal.includes('\\') ? (JSON.parse(literal) as string) : literal.slice(1, -1);
      if (!str.isWellFormed()) return 'the request body contains an unpaired UTF-16 surrogate escape';
      let k = j + 1;
      while (WS.has(text[k]!)) k++;
      const names = stack.at(-1);
      if (text[k] === ':' && names) {
        if (str === '__proto__') return 'the request body must not contain a "__proto__" member';
        if (names.has(str)) return `the request body names "${str.slice(0, 64)}" more than once`;
        names.add(str);
      }
      i = j;
    }
  }
  return null;
}
