import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createDataSource } from '@tagflow/persistence';
import {
  Api,
  DATABASE,
  freshDatabaseUrl,
  readStream,
  task,
  waitFor,
  waitForWorkflow,
  workflow,
} from './support/harness.js';

/** Past 2^32: neither a signed nor an unsigned 32-bit integer holds these ids. */
const START = 2 ** 32 + 1000;
/** The high-volume tables whose ids are 64-bit (events, logs, audit) and the idempotency keys. */
const TABLES = ['task_event', 'workflow_event', 'task_log', 'audit', 'idempotency'];

/**
 * A deployment that has written billions of events, log pieces and audit records: their
 * ids no longer fit 32 bits. Each table's id sequence is moved past 2^32 before the API
 * starts; events, logs and the audit log still page, stream and resume as before.
 */
describe(`ids past 2^32 on ${DATABASE}`, () => {
  let api: Api;
  beforeAll(async () => {
    const databaseUrl = await freshDatabaseUrl();
    const ds = createDataSource(databaseUrl);
    await ds.initialize();
    try {
      for (const table of TABLES) {
        if (DATABASE === 'postgres')
          await ds.query(`SELECT setval(pg_get_serial_sequence('${table}', 'id'), ${START})`);
        else {
          await ds.query('DELETE FROM sqlite_sequence WHERE name = ?', [table]);
          await ds.query('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)', [table, START]);
        }
      }
    } finally {
      await ds.destroy();
    }
    api = await Api.start({ databaseUrl });
  });
  afterAll(async () => {
    await api?.stop();
  });

  it("pages and follows a workflow's events, and resumes from an event id", async () => {
    const tag = `ids-${Date.now()}`;
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: ['a', 'b', 'c'].map((n, i) => task(n, { tags: [tag], priority: 3 - i })) }),
    );
    for (let i = 0; i < 3; i++) expect((await api.complete(await api.take([tag]))).status).toBe(200);
    await waitForWorkflow(api, wf.id, ['SUCCESS']);
    type Page = { items: { id: string; to: string; name?: string }[]; next: string | null };
    const all = await waitFor('every event to be readable', async () => {
      const page = (await api.get<Page>(`/v1/workflows/${wf.id}/events`)).body;
      return page.items.at(-1)?.to === 'SUCCESS' && !page.items.at(-1)?.name ? page.items : undefined;
    });
    // Each part of an event id (transaction:id of each table) is where to resume; ids are past START.
    const ids = all.flatMap((e) => e.id.split('.').map((place) => Number(place.split(':')[1])));
    expect(Math.max(...ids)).toBeGreaterThan(START);

    const paged: Page['items'] = [];
    for (let after: string | null = ''; after !== null;) {
      const page: Page = (await api.get<Page>(`/v1/workflows/${wf.id}/events?limit=2&after=${after}`)).body;
      paged.push(...page.items);
      after = page.next;
    }
    expect(paged).toEqual(all);

    const res = await fetch(`${api.url}/v1/workflows/${wf.id}/events?follow=1`, {
      headers: { 'last-event-id': all[2].id },
    });
    const rest = await readStream(res);
    expect(rest.filter((e) => e.event === 'transition').map((e) => e.id)).toEqual(all.slice(3).map((e) => e.id));
    expect(rest.at(-1)).toMatchObject({ event: 'end' });
  });

  it("numbers an attempt's output past 2^32 and resumes a follow after a piece", async () => {
    const tag = `ids-log-${Date.now()}`;
    const wf = await api.createWorkflow(workflow({ sealed: true, tasks: [task('writer', { tags: [tag] })] }));
    const leased = await api.take([tag]);
    const seqs: unknown[] = [];
    for (const data of ['one\n', 'two\n', 'three\n']) {
      const r = await api.post(`/v1/tasks/${leased.id}/logs`, {
        lease_token: leased.lease.token,
        stream: 'stdout',
        data,
      });
      expect(r.status).toBe(200);
      seqs.push(r.body.seq);
    }
    expect(seqs.every((s) => typeof s === 'number' && s > START)).toBe(true);
    expect((await api.complete(leased)).status).toBe(200);
    await waitForWorkflow(api, wf.id, ['SUCCESS']);

    expect(await (await fetch(`${api.url}/v1/tasks/${leased.id}/logs`)).text()).toBe('one\ntwo\nthree\n');
    const res = await fetch(`${api.url}/v1/tasks/${leased.id}/logs?follow=1`, {
      headers: { 'last-event-id': String(seqs[0]) },
    });
    const rest = await readStream(res);
    expect(rest.filter((e) => e.event === 'stdout').map((e) => [e.id, JSON.parse(e.data) as string])).toEqual([
      [String(seqs[1]), 'two\n'],
      [String(seqs[2]), 'three\n'],
    ]);
    expect(rest.at(-1)).toMatchObject({ event: 'end' });
  });

  it('pages the audit log past 2^32, newest first, ids as numbers', async () => {
    for (let i = 0; i < 5; i++) await api.createWorkflow(workflow());
    type Page = { items: { id: number; method: string }[]; next_cursor: string | null };
    const all = (await api.get<Page>('/v1/audit?limit=500')).body.items;
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(all.every((r) => typeof r.id === 'number' && r.id > START)).toBe(true);
    expect(all.map((r) => r.id)).toEqual([...all.map((r) => r.id)].sort((x, y) => y - x));

    const paged: Page['items'] = [];
    for (let cursor: string | null = null; ;) {
      const page: Page = (await api.get<Page>(`/v1/audit?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).body;
      paged.push(...page.items);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    // Reading the log writes no record (GETs are not audited), so both reads saw the same rows.
    expect(paged.map((r) => r.id)).toEqual(all.map((r) => r.id));
  });
});
