import { describe, expect, it } from '@jest/globals';
import { networkInterfaces } from 'node:os';
import { blockedAddress, blockedCallbackFields, blockedHost, guardedLookup } from './addresses.js';

describe('callback addresses', () => {
  it('refuses loopback, link-local, unspecified and metadata addresses in every spelling', () => {
    const refused: Record<string, string> = {
      '127.0.0.1': 'a loopback address',
      '127.200.3.4': 'a loopback address',
      '::1': 'a loopback address',
      '[::1]': 'a loopback address',
      '::ffff:127.0.0.1': 'a loopback address',
      '::ffff:7f00:1': 'a loopback address',
      '169.254.169.254': 'a link-local address',
      '::ffff:169.254.169.254': 'a link-local address',
      'fe80::1': 'a link-local address',
      'FE80::abcd': 'a link-local address',
      '0.0.0.0': 'an unspecified address',
      '::': 'an unspecified address',
      'fd00:ec2::254': "a cloud metadata service's address",
      '100.100.100.200': "a cloud metadata service's address",
    };
    for (const [ip, why] of Object.entries(refused)) expect({ ip, why: blockedAddress(ip) }).toEqual({ ip, why });
  });

  it('judges an IPv4 address written inside IPv6 by that IPv4 address: IPv4-compatible, translated, NAT64, 6to4', () => {
    const refused: Record<string, string> = {
      '::127.0.0.1': 'a loopback address',
      '::7f00:1': 'a loopback address',
      '[::7f00:1]': 'a loopback address',
      '::169.254.169.254': 'a link-local address',
      '::2': 'an unspecified address',
      '::ffff:0:127.0.0.1': 'a loopback address',
      '::ffff:0:7f00:1': 'a loopback address',
      '64:ff9b::7f00:1': 'a loopback address',
      '64:ff9b::127.0.0.1': 'a loopback address',
      '64:FF9B::A9FE:A9FE': 'a link-local address',
      '64:ff9b::6464:64c8': "a cloud metadata service's address",
      '64:ff9b::': 'an unspecified address',
      '2002:7f00:1::': 'a loopback address',
      '2002:a9fe:a9fe:1::5': 'a link-local address',
    };
    for (const [ip, why] of Object.entries(refused)) expect({ ip, why: blockedAddress(ip) }).toEqual({ ip, why });
    for (const ip of [
      '64:ff9b::a00:5',
      '64:ff9b::808:808',
      '2002:808:808::1',
      '::ffff:0:808:808',
      '::8.8.8.8',
      '2001:db8::7f00:1',
      '64:ff9c::7f00:1',
    ]) {
      expect({ ip, why: blockedAddress(ip) }).toEqual({ ip, why: null });
    }
  });

  it('refuses the local-use NAT64 range whole: where the IPv4 address sits in it depends on the translator', () => {
    for (const ip of ['64:ff9b:1::7f00:1', '64:ff9b:1::808:808', '64:ff9b:1:ffff:ffff:ffff:ffff:ffff']) {
      expect({ ip, why: blockedAddress(ip) }).toEqual({
        ip,
        why: 'a local-use NAT64 address (64:ff9b:1::/48), which may stand for any IPv4 address',
      });
    }
    expect(blockedAddress('64:ff9b:2::7f00:1')).toBeNull();
  });

  it('lets private networks and public addresses through', () => {
    for (const ip of [
      '10.0.0.5',
      '172.16.3.4',
      '192.168.1.10',
      'fd12:3456::1',
      '8.8.8.8',
      '2001:db8::1',
      '100.64.0.1',
    ]) {
      if (ownAddresses().includes(ip)) continue;
      expect({ ip, why: blockedAddress(ip) }).toEqual({ ip, why: null });
    }
  });

  it("refuses this host's own addresses", () => {
    for (const ip of ownAddresses()) expect({ ip, why: blockedAddress(ip) }).toEqual({ ip, why: expect.any(String) });
    // ...however an IPv6 one is spelled.
    for (const ip of ownAddresses().filter((a) => a.includes(':'))) {
      const [head, tail = ''] = ip.split('::');
      const groups = [head ? head.split(':') : [], tail ? tail.split(':') : []];
      const long = [...groups[0], ...new Array<string>(8 - groups[0].length - groups[1].length).fill('0'), ...groups[1]]
        .join(':')
        .toUpperCase();
      expect({ long, why: blockedAddress(long) }).toEqual({ long, why: expect.any(String) });
    }
  });

  it('reads the host of a URL as the URL parser does (decimal, octal, bracketed)', () => {
    expect(blockedHost('http://2130706433/')).toBe('127.0.0.1 is a loopback address');
    expect(blockedHost('http://0177.0.0.1:8080/x')).toBe('127.0.0.1 is a loopback address');
    expect(blockedHost('http://[::ffff:127.0.0.1]/')).toContain('a loopback address');
    expect(blockedHost('http://[::127.0.0.1]/')).toBe('::7f00:1 is a loopback address');
    expect(blockedHost('http://[64:ff9b::127.0.0.1]:8080/')).toBe('64:ff9b::7f00:1 is a loopback address');
    expect(blockedHost('http://LOCALHOST./')).toBeNull(); // a name: refused where it is resolved, not here
    expect(blockedHost('http://api.localhost/')).toBe('api.localhost is a loopback name');
    expect(blockedHost('https://engine.example.com/hook')).toBeNull();
  });

  it('refuses, where the connection is made, an address the URL check refuses: one rule for both', async () => {
    const resolve = (host: string) =>
      new Promise<string>((res) =>
        guardedLookup(host, {}, (err, address) =>
          res(
            err
              ? `${err.constructor.name}: ${err.message}`
              : typeof address === 'string'
                ? address
                : JSON.stringify(address),
          ),
        ),
      );
    for (const ip of ['::127.0.0.1', '64:ff9b::7f00:1', '2002:a9fe:a9fe::', '::ffff:0:7f00:1']) {
      expect(await resolve(ip)).toMatch(/^BlockedAddressError: .* resolves to .*, a (loopback|link-local) address$/);
      expect(blockedHost(`http://[${ip}]/`)).not.toBeNull();
    }
    expect(await resolve('64:ff9b::808:808')).toBe('64:ff9b::808:808');
  });

  it('finds a callback at any depth of a body and names its field', () => {
    const body = {
      name: 'w',
      tasks: [
        { name: 'a' },
        { name: 'b', on_error: [{ run: [{ name: 'fix', callback: { url: 'http://169.254.169.254/' } }] }] },
      ],
    };
    expect(blockedCallbackFields(body, false)?.field).toBe('tasks.1.on_error.0.run.0.callback.url');
    expect(blockedCallbackFields(body, true)).toBeNull();
    expect(blockedCallbackFields({ callback: { url: 'not a url' } }, false)).toBeNull();
  });
});

function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) =>
    (list ?? []).map((a) => a.address.toLowerCase().replace(/%.*$/, '')),
  );
}
