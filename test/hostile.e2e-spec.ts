import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, waitForWorkflow, workflow } from './support/harness.js';

/** Requests that are valid but large, or built to make the API work hard: answered, never a 5xx. */
describe('hostile and huge valid input', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api.stop();
  });

  it('takes 1,000 tasks producing 100 keys each (100,000 list items, under every limit)', async () => {
    // Once a 500 "too many SQL variables": lists are now read in slices.
    const tasks = Array.from({ length: 1000 }, (_, i) => ({
      name: `t${i}`, action: { type: 'noop' }, produces: Array.from({ length: 100 }, (_, j) => `k${i}v${j}`),
    }));
    const r = await api.post('/v1/workflows', workflow({ tasks }));
    expect(r.status).toBe(201);
    expect(r.body.task_counts.READY).toBe(1000);
  });

  it('takes 999 tasks reading 30 data keys each and one selecting 32 tags, and ends the deadlock it makes', async () => {
    const tasks: object[] = Array.from({ length: 999 }, (_, i) => ({
      name: `r${i}`, action: { type: 'noop' }, tags: [`g${i % 50}`, `h${i % 7}`],
      input: Object.fromEntries(Array.from({ length: 30 }, (_, j) => [`a${j}`, `{{ data.k${i}v${j} }}`])),
    }));
    tasks.push({ name: 'sel', action: { type: 'noop' }, requires_tags: Array.from({ length: 32 }, (_, k) => `g${k}`) });
    const r = await api.post('/v1/workflows', workflow({ sealed: true, tasks }));
    expect(r.status).toBe(201);
    // Nothing will ever write those keys: the sealed workflow ends instead of waiting for ever.
    const wf = await waitForWorkflow(api, r.body.id, ['ERROR'], 30_000);
    expect(wf.task_counts).toMatchObject({ ERROR: 999, SKIPPED: 1 });
  });

  it('stores an input built to make a pattern backtrack, and answers meanwhile', async () => {
    const input = { a: `{{${' '.repeat(200_000)}`, b: '{{'.repeat(100_000), c: `{{ data.${'x.'.repeat(100_000)}x }}` };
    const created = api.post('/v1/workflows', workflow({ tasks: [{ name: 'odd', action: { type: 'noop' }, input }] }));
    const health = await api.get('/health');
    expect(health.status).toBe(200);
    const r = await created;
    expect(r.status).toBe(422); // "{{ data.x.x.…" is a malformed reference (a data key is at most 128 characters)
    expect(r.body.message).toContain('is not a data key');
    expect(r.body.message.length).toBeLessThan(2000); // the message shows the start of the reference, not all of it
    const ok = await api.post('/v1/workflows', workflow({ tasks: [{ name: 'odd', action: { type: 'noop' }, input: { a: input.a, b: input.b } }] }));
    expect(ok.status).toBe(201);
    expect((await api.task(ok.body.id, 'odd')).input).toEqual({ a: input.a, b: input.b });
  });
});
