import { describe, expect, it } from '@jest/globals';
import { signature } from './dispatcher.js';

describe('callback signature', () => {
  it('is t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">: the example of docs/flow-control.md', () => {
    const body = '{"id":"0196a1e2-0000-7000-8000-000000000000","state":"SUCCESS"}';
    expect(signature('s3cret', body, 1767225600_999)).toBe(
      't=1767225600,v1=ea7f93bc8356ec01a2fabb7f3b0184c9a43aa47f649a703f1c6cdfd652d96184',
    );
  });

  it('signs the time: the same body a second later has another v1, so an old signature cannot be given a new t', () => {
    const v1 = (at: number) => signature('s3cret', '{}', at).split(',v1=')[1];
    expect(v1(1767225600_000)).not.toBe(v1(1767225601_000));
  });
});
