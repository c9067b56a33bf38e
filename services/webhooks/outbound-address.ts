import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Where a webhook may be sent. A receiver must resolve to public addresses only, unless its host
 * (or the address it resolves to) is on the allow-list (WEBHOOK_ALLOW_HOSTS). The address checked
 * is the address connected to (see webhook-sender.ts), so a name that resolves to a public
 * address for the check and to a private one for the connection (DNS rebinding) gains nothing.
 */
const NOT_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata services
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const)
  NOT_PUBLIC.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const)
  NOT_PUBLIC.addSubnet(net, bits, 'ipv6');

/** The IPv4 address an IPv6 address embeds (mapped, compatible, NAT64, 6to4), else null. */
function embeddedIpv4(addr: string): string | null {
  const lower = addr.toLowerCase();
  const dotted = /^(?:::ffff:|::|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1]!;
  const groups = expandIpv6(lower);
  if (!groups) return null;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (n: number) => groups.slice(0, n).every((g) => g === 0);
  if (zeros(5) && (groups[5] === 0xffff || groups[5] === 0)) return v4(groups[6]!, groups[7]!); // mapped / compatible
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0))
    return v4(groups[6]!, groups[7]!); // NAT64
  if (groups[0] === 0x2002) return v4(groups[1]!, groups[2]!); // 6to4
  return null;
}

function expandIpv6(addr: string): number[] | null {
  if (addr.includes('.')) return null;
  const [head, tail, ...rest] = addr.split('::');
  if (rest.length) return null;
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = part(head);
  const t = part(tail);
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array<number>(Math.max(fill, 0)).fill(0), ...t];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

export function isPublicAddress(addr: string): boolean {
  const family = isIP(addr);
  if (family === 0) return false;
  if (family === 4) return !NOT_PUBLIC.check(addr, 'ipv4');
  const v4 = embeddedIpv4(addr);
  if (v4 !== null) return isPublicAddress(v4);
  return !NOT_PUBLIC.check(addr, 'ipv6');
}

export type AllowList = { host(hostname: string): boolean; address(addr: string): boolean };

/** WEBHOOK_ALLOW_HOSTS entries: host names (exact), addresses and CIDR blocks. */
export function createAllowList(entries: readonly string[]): AllowList {
  const names = new Set<string>();
  const blocks = new BlockList();
  for (const raw of entries) {
    const e = raw.replace(/^\[|\]$/g, '').toLowerCase();
    const [addr, bits] = e.split('/');
    const family = isIP(addr ?? '');
    if (family === 0) names.add(e);
    else if (bits === undefined) blocks.addAddress(addr!, family === 4 ? 'ipv4' : 'ipv6');
    else blocks.addSubnet(addr!, Number(bits), family === 4 ? 'ipv4' : 'ipv6');
  }
  const address = (addr: string): boolean => {
    const family = isIP(addr);
    return family !== 0 && blocks.check(addr, family === 4 ? 'ipv4' : 'ipv6');
  };
  return {
    // An address literal in a URL is allowed when the address is.
    host: (hostname) => {
      const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
      return names.has(h) || address(h);
    },
    address,
  };
}

export type ResolvedTarget = { ok: true; address: string; family: 4 | 6 } | { ok: false; error: string };

/**
 * Resolves a receiver's host and picks the address to connect to: refused when any address it
 * resolves to is not public (a name that also points inward is not trusted) unless allowed.
 */
export async function resolveTarget(
  hostname: string,
  allow: AllowList,
  resolve: (host: string) => Promise<Array<{ address: string; family: number }>> = (h) =>
    lookup(h, { all: true, verbatim: true }),
): Promise<ResolvedTarget> {
  const host = hostname.replace(/^\[|\]$/g, '');
  let addresses: Array<{ address: string; family: number }>;
  if (isIP(host) !== 0) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await resolve(host);
    } catch {
      return { ok: false, error: 'the receiver host name does not resolve' };
    }
  }
  if (addresses.length === 0) return { ok: false, error: 'the receiver host name does not resolve' };
  const hostAllowed = allow.host(host);
  const refused = addresses.find((a) => !isPublicAddress(a.address) && !hostAllowed && !allow.address(a.address));
  if (refused)
    return { ok: false, error: `refused: the receiver resolves to a non-public address (${refused.address})` };
  const first = addresses[0]!;
  return { ok: true, address: first.address, family: first.family === 6 ? 6 : 4 };
}
