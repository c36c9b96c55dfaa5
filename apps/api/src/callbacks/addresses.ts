import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * Where callbacks may not go unless CALLBACK_ALLOW_PRIVATE=1: the API's own host (loopback),
 * link-local addresses (cloud metadata services live at 169.254.169.254) and unspecified
 * ones, so a task's creator cannot use the API to reach what only the API's host can. Private
 * networks (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed: engines that take callbacks
 * usually live there. An IPv4 address written as IPv6 is judged as that IPv4 address (EMBEDDING).
 */
const BLOCKED: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['127.0.0.0', 8, 'ipv4', 'a loopback address'],
  ['169.254.0.0', 16, 'ipv4', 'a link-local address'],
  ['0.0.0.0', 8, 'ipv4', 'an unspecified address'],
  ['::1', 128, 'ipv6', 'a loopback address'],
  ['fe80::', 10, 'ipv6', 'a link-local address'],
  ['::', 128, 'ipv6', 'an unspecified address'],
  // Cloud metadata services outside link-local: AWS over IPv6, Alibaba Cloud.
  ['fd00:ec2::254', 128, 'ipv6', "a cloud metadata service's address"],
  ['100.100.100.200', 32, 'ipv4', "a cloud metadata service's address"],
];
const lists = BLOCKED.map(([net, prefix, type, what]) => {
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return { list, type, what };
});

let own: { at: number; set: Set<string> } | null = null;

/** This host's interface addresses, read again every minute. */
function ownAddresses(): Set<string> {
  if (!own || Date.now() - own.at > 60_000) {
    const set = new Set<string>();
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? []) set.add(a.address.toLowerCase().replace(/%.*$/, ''));
    own = { at: Date.now(), set };
  }
  return own.set;
}

/**
 * The ranges in which an IPv6 address stands for an IPv4 one, with where the IPv4 address
 * sits: mapped (::ffff:0:0/96), translated (::ffff:0:0:0/96), IPv4-compatible (::/96,
 * deprecated but still routed by some stacks), NAT64 (64:ff9b::/96, RFC 6052) and 6to4
 * (2002::/16). Such an address is judged by its IPv4 address: a translator or tunnel on the
 * way may deliver it there.
 */
const EMBEDDING: { prefix: number[]; at: number }[] = [
  { prefix: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], at: 12 },
  { prefix: [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0], at: 12 },
  { prefix: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], at: 12 },
  { prefix: [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0], at: 12 },
  { prefix: [0x20, 0x02], at: 2 },
];

/**
 * The local-use NAT64 range (64:ff9b:1::/48, RFC 8215): where its IPv4 address sits depends
 * on the prefix length the translator was given, which the API cannot know, so no reading of
 * it can be trusted and it is refused whole.
 */
const LOCAL_NAT64 = [0, 0x64, 0xff, 0x9b, 0, 1];

/** The 16 bytes of an IPv6 address (`::`, and a dotted IPv4 tail, allowed), or null. */
function ipv6Bytes(address: string): number[] | null {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (dotted) {
    const [a, b, c, d] = dotted.split('.').map(Number);
    text = `${text.slice(0, -dotted.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const head = groups(halves[0]);
  const tail = halves.length > 1 ? groups(halves[1]) : [];
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  if (all.length !== 8 || all.some((g) => !(g >= 0 && g <= 0xffff))) return null;
  return all.flatMap((g) => [g >> 8, g & 255]);
}

/** The IPv4 address an IPv6 address stands for (see EMBEDDING), or null. */
function embeddedIpv4(bytes: number[]): string | null {
  const hit = EMBEDDING.find((e) => e.prefix.every((b, i) => bytes[i] === b));
  return hit ? bytes.slice(hit.at, hit.at + 4).join('.') : null;
}

function listed(address: string, type: 'ipv4' | 'ipv6'): string | null {
  const why = lists.find((l) => l.type === type && l.list.check(address, type))?.what;
  // The API's own host by any of its addresses reaches what listens on all of them.
  return why ?? (ownAddresses().has(address) ? "an address of the API's own host" : null);
}

/**
 * Why Tagflow does not call this IP address ("a loopback address"), or null. Used for both
 * a URL's literal address and each address a name resolves to when the connection is made,
 * so the two cannot disagree.
 */
export function blockedAddress(ip: string): string | null {
  const bare = ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (isIPv4(bare)) return listed(bare, 'ipv4');
  if (!isIPv6(bare)) return null;
  const bytes = ipv6Bytes(bare);
  if (!bytes) return null;
  // One spelling of each address (as the OS lists its own): 0:0::1 is ::1.
  const address = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  // The IPv6 rules first: ::1 and :: are also in ::/96, but are judged as what they are.
  const v6 = listed(address, 'ipv6');
  if (v6) return v6;
  if (LOCAL_NAT64.every((b, i) => bytes[i] === b))
    return 'a local-use NAT64 address (64:ff9b:1::/48), which may stand for any IPv4 address';
  const v4 = embeddedIpv4(bytes);
  return v4 ? listed(v4, 'ipv4') : null;
}

/** Why a callback URL names a host Tagflow does not call, from the URL alone (a literal address or localhost), or null. */
export function blockedHost(url: string): string | null {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return `${host} is a loopback name`;
  const why = blockedAddress(host);
  return why ? `${host} is ${why}` : null;
}

export class BlockedAddressError extends Error {}

/** dns.lookup that refuses a name resolving to a blocked address: checked where the connection is made, so a name cannot change its answer in between. */
export function guardedLookup(
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const list = addresses;
    const bad = list.map((a) => ({ a, why: blockedAddress(a.address) })).find((x) => x.why);
    if (bad) return callback(new BlockedAddressError(`${hostname} resolves to ${bad.a.address}, ${bad.why}`), []);
    if (options.all) return callback(null, list);
    callback(null, list[0].address, list[0].family);
  });
}

/**
 * A request's callback URLs (`callback.url` at any depth of its body: the workflow's, its
 * tasks', their handlers') checked before anything is written: one naming a blocked host
 * is a 400 naming the field, unless `allowPrivate`.
 */
export function blockedCallbackFields(
  body: unknown,
  allowPrivate: boolean,
  path = '',
): { field: string; message: string } | null {
  if (allowPrivate || typeof body !== 'object' || body === null) return null;
  const entries = Array.isArray(body) ? body.map((v, i) => [String(i), v] as const) : Object.entries(body);
  for (const [key, value] of entries) {
    const field = path ? `${path}.${key}` : key;
    if (
      key === 'callback' &&
      typeof value === 'object' &&
      value !== null &&
      typeof (value as { url?: unknown }).url === 'string'
    ) {
      let why: string | null = null;
      try {
        why = blockedHost((value as { url: string }).url);
      } catch {
        why = null; // not a URL: validation said so already
      }
      if (why)
        return {
          field: `${field}.url`,
          message: `${field}.url: ${why}; Tagflow does not call loopback or link-local addresses unless the API runs with CALLBACK_ALLOW_PRIVATE=1`,
        };
      continue;
    }
    if (typeof value === 'object' && value !== null) {
      const found = blockedCallbackFields(value, allowPrivate, field);
      if (found) return found;
    }
  }
  return null;
}
