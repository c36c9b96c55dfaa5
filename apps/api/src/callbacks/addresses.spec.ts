import { describe, expect, it } from '@jest/globals';
import { networkInterfaces } from 'node:os';
import { blockedAddress, blockedCallbackFields, blockedHost } from './addresses.js';

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

  it('lets private networks and public addresses through', () => {
    for (const ip of ['10.0.0.5', '172.16.3.4', '192.168.1.10', 'fd12:3456::1', '8.8.8.8', '2001:db8::1', '100.64.0.1']) {
      if (ownAddresses().includes(ip)) continue;
      expect({ ip, why: blockedAddress(ip) }).toEqual({ ip, why: null });
    }
  });

  it("refuses this host's own addresses", () => {
    for (const ip of ownAddresses()) expect({ ip, why: blockedAddress(ip) }).toEqual({ ip, why: expect.any(String) });
  });

  it('reads the host of a URL as the URL parser does (decimal, octal, bracketed)', () => {
    expect(blockedHost('http://2130706433/')).toBe('127.0.0.1 is a loopback address');
    expect(blockedHost('http://0177.0.0.1:8080/x')).toBe('127.0.0.1 is a loopback address');
    expect(blockedHost('http://[::ffff:127.0.0.1]/')).toContain('a loopback address');
    expect(blockedHost('http://LOCALHOST./')).toBeNull(); // a name: refused where it is resolved, not here
    expect(blockedHost('http://api.localhost/')).toBe('api.localhost is a loopback name');
    expect(blockedHost('https://engine.example.com/hook')).toBeNull();
  });

  it('finds a callback at any depth of a body and names its field', () => {
    const body = { name: 'w', tasks: [{ name: 'a' }, { name: 'b', on_error: [{ run: [{ name: 'fix', callback: { url: 'http://169.254.169.254/' } }] }] }] };
    expect(blockedCallbackFields(body, false)?.field).toBe('tasks.1.on_error.0.run.0.callback.url');
    expect(blockedCallbackFields(body, true)).toBeNull();
    expect(blockedCallbackFields({ callback: { url: 'not a url' } }, false)).toBeNull();
  });
});

function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.toLowerCase().replace(/%.*$/, '')));
}
