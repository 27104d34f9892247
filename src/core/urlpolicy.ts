import { BlockList, isIP } from 'node:net';

// Where callbacks may go (SPEC §6 CALLBACK_ALLOWED_HOSTS). Link-local and cloud-metadata
// targets are refused whatever the operator allows: a callback URL is client input, and
// a gateway that POSTs to 169.254.169.254 hands the client its cloud credentials (SSRF).
// Checked twice: on the URL text at accept time (400 where the text alone decides), and
// on every resolved address at connect time, so DNS rebinding cannot get around it.

const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal']);

const ALWAYS_BLOCKED = new BlockList();
ALWAYS_BLOCKED.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, AWS/GCP/Azure metadata
ALWAYS_BLOCKED.addSubnet('0.0.0.0', 8, 'ipv4'); // "this network": reaches local services on some kernels
ALWAYS_BLOCKED.addAddress('100.100.100.200', 'ipv4'); // Alibaba Cloud metadata
ALWAYS_BLOCKED.addSubnet('fe80::', 10, 'ipv6'); // link-local
ALWAYS_BLOCKED.addAddress('fd00:ec2::254', 'ipv6'); // AWS metadata over IPv6
ALWAYS_BLOCKED.addAddress('::', 'ipv6');

export interface UrlPolicy {
  /** Exact host names allowed (lower case); null = no allow-list. */
  names: Set<string> | null;
  /** `*.example.com` entries as their suffix `.example.com`. */
  suffixes: string[];
  /** CIDR and IP entries. */
  nets: BlockList | null;
}

export interface Verdict {
  ok: boolean;
  reason?: string;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 address it is. */
function plainIp(address: string): { ip: string; family: 'ipv4' | 'ipv6' } | null {
  let a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1]!;
  const v = isIP(a);
  return v === 4 ? { ip: a, family: 'ipv4' } : v === 6 ? { ip: a, family: 'ipv6' } : null;
}

/** Compiles CALLBACK_ALLOWED_HOSTS entries: names, `*.suffix` wildcards, IPs and CIDRs. */
export function compilePolicy(entries: string[] | null): UrlPolicy {
  if (!entries || entries.length === 0) return { names: null, suffixes: [], nets: null };
  const names = new Set<string>();
  const suffixes: string[] = [];
  const nets = new BlockList();
  for (const raw of entries) {
    const e = raw.trim().toLowerCase();
    const cidr = /^(.+)\/(\d{1,3})$/.exec(e);
    if (cidr) {
      const ip = plainIp(cidr[1]!);
      const bits = Number(cidr[2]);
      if (!ip || bits > (ip.family === 'ipv4' ? 32 : 128)) throw new Error(`"${raw}" is not a valid CIDR`);
      nets.addSubnet(ip.ip, bits, ip.family);
    } else if (plainIp(e)) {
      const ip = plainIp(e)!;
      nets.addAddress(ip.ip, ip.family);
    } else if (e.startsWith('*.') && e.length > 2) {
      suffixes.push(e.slice(1));
    } else if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(e)) {
      names.add(e);
    } else {
      throw new Error(`"${raw}" is not a host name, *.wildcard, IP or CIDR`);
    }
  }
  return { names, suffixes, nets };
}

function nameAllowed(p: UrlPolicy, host: string): boolean {
  return p.names!.has(host) || p.suffixes.some((s) => host.endsWith(s));
}

/** Judges an address the client will actually be connected to. */
export function checkAddress(p: UrlPolicy, host: string, address: string): Verdict {
  const ip = plainIp(address);
  if (!ip) return { ok: false, reason: `unparseable address ${address}` };
  if (ALWAYS_BLOCKED.check(ip.ip, ip.family)) return { ok: false, reason: `address ${address} is link-local or cloud metadata` };
  if (p.names === null) return { ok: true };
  if (!plainIp(host) && nameAllowed(p, host)) return { ok: true };
  if (p.nets!.check(ip.ip, ip.family)) return { ok: true };
  return { ok: false, reason: `host ${host} (${address}) is not in CALLBACK_ALLOWED_HOSTS` };
}

/**
 * Judges the URL's host from its text alone. `ok: false` is final; `ok: true` may still be
 * refused at connect time once the name is resolved.
 */
export function checkHost(p: UrlPolicy, hostname: string): Verdict {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (METADATA_NAMES.has(host)) return { ok: false, reason: `host ${host} is a cloud metadata service` };
  const ip = plainIp(host);
  if (ip) return checkAddress(p, host, ip.ip);
  if (p.names === null) return { ok: true };
  if (nameAllowed(p, host)) return { ok: true };
  // A name not listed can still pass if it resolves into an allowed network.
  if (p.nets!.rules.length > 0) return { ok: true };
  return { ok: false, reason: `host ${host} is not in CALLBACK_ALLOWED_HOSTS` };
}
