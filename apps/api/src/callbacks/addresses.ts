import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP, isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * Where callbacks may not go unless CALLBACK_ALLOW_PRIVATE=1: the API's own host (loopback),
 * link-local addresses (cloud metadata services live at 169.254.169.254) and unspecified
 * ones, so a task's creator cannot use the API to reach what only the API's host can. Private
 * networks (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed: engines that take callbacks
 * usually live there.
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
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) set.add(a.address.toLowerCase().replace(/%.*$/, ''));
    own = { at: Date.now(), set };
  }
  return own.set;
}

/** Why Tagflow does not call this IP address ("a loopback address"), or null. */
export function blockedAddress(ip: string): string | null {
  let address = ip.replace(/^\[|\]$/g, '').toLowerCase();
  // An IPv4 address written as IPv6 (::ffff:127.0.0.1, ::ffff:7f00:1) is that IPv4 address.
  const mapped = /^::ffff:(?:0:)?(.+)$/.exec(address)?.[1];
  if (mapped && isIPv4(mapped)) address = mapped;
  else if (mapped && /^[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(mapped)) {
    const [hi, lo] = mapped.split(':').map((h) => parseInt(h, 16));
    address = [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  }
  const type = isIP(address) === 4 ? 'ipv4' : isIP(address) === 6 ? 'ipv6' : null;
  if (!type) return null;
  const listed = lists.find((l) => l.type === type && l.list.check(address, type))?.what;
  if (listed) return listed;
  // The API's own host by any of its addresses reaches what listens on all of them.
  return ownAddresses().has(address) ? "an address of the API's own host" : null;
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
export function guardedLookup(hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void {
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
export function blockedCallbackFields(body: unknown, allowPrivate: boolean, path = ''): { field: string; message: string } | null {
  if (allowPrivate || typeof body !== 'object' || body === null) return null;
  const entries = Array.isArray(body) ? body.map((v, i) => [String(i), v] as const) : Object.entries(body);
  for (const [key, value] of entries) {
    const field = path ? `${path}.${key}` : key;
    if (key === 'callback' && typeof value === 'object' && value !== null && typeof (value as { url?: unknown }).url === 'string') {
      let why: string | null = null;
      try {
        why = blockedHost((value as { url: string }).url);
      } catch {
        why = null; // not a URL: validation said so already
      }
      if (why) return { field: `${field}.url`, message: `${field}.url: ${why}; Tagflow does not call loopback or link-local addresses unless the API runs with CALLBACK_ALLOW_PRIVATE=1` };
      continue;
    }
    if (typeof value === 'object' && value !== null) {
      const found = blockedCallbackFields(value, allowPrivate, field);
      if (found) return found;
    }
  }
  return null;
}
