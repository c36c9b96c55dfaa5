import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Api, DATABASE, redisUrl, waitFor, workflow } from './support/harness.js';

const uniq = () => randomBytes(4).toString('hex');
const as = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Three API replicas on one PostgreSQL and one Redis, asked in turn as a round-robin load
 * balancer would: the limits of a credential hold for all of them together, a replica that
 * dies gives its share back, the periodic work is done once for all, and a replica whose bus
 * subscription is cut still answers its waits. (PostgreSQL only: scripts/test.sh.)
 */
describe('three API replicas behind a round-robin balancer', () => {
  const admin = `tfk_${randomBytes(24).toString('base64url')}`;
  const env = {
    TAGFLOW_ADMIN_TOKEN: admin,
    RATE_LIMIT_RPS: '5',
    RATE_LIMIT_BURST: '10',
    LONG_WAITS_PER_CREDENTIAL: '2',
  };
  // Replica 0 reaches Redis as an ACL user of its own, so the test can cut its subscription alone.
  const user = { name: `tf-${uniq()}`, password: uniq() };
  let redis: Redis;
  let rs: Api[];
  beforeAll(async () => {
    if (DATABASE !== 'postgres') throw new Error('the scale-out suite needs TEST_DATABASE=postgres');
    redis = new Redis(redisUrl());
    await redis.call('ACL', 'SETUSER', user.name, 'on', `>${user.password}`, '~*', '&*', '+@all');
    const own = new URL(redisUrl());
    own.username = user.name;
    own.password = user.password;
    const first = await Api.start({ env: { ...env, REDIS_URL: own.toString() } });
    const more = await Promise.all(
      [1, 2].map(() => Api.start({ databaseUrl: first.databaseUrl, prefix: first.prefix, env })),
    );
    rs = [first, ...more];
  });
  afterAll(async () => {
    await Promise.all((rs ?? []).map((r) => r.stop()));
    await redis?.call('ACL', 'DELUSER', user.name).catch(() => undefined);
    redis?.disconnect();
  });

  it('holds a credential to RATE_LIMIT_RPS across all replicas together, not to three times it', async () => {
    const reader = (await rs[0].request('POST', '/v1/keys', { name: `r-${uniq()}`, role: 'reader' }, as(admin))).body
      .token as string;
    const byReplica = [0, 0, 0];
    let accepted = 0;
    let refused = 0;
    const started = Date.now();
    // Four clients for 4 s, each sending to the next replica in turn.
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (Date.now() - started < 4000) {
          const i = next++ % 3;
          const r = await fetch(`${rs[i].url}/v1/workflows?limit=1`, { headers: as(reader) });
          await r.arrayBuffer();
          if (r.status === 200) {
            accepted++;
            byReplica[i]++;
          } else if (r.status === 429) refused++;
          else throw new Error(`replica ${i} answered ${r.status}`);
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `rate limit 5/s, burst 10, over 3 replicas for ${seconds.toFixed(1)} s: ${accepted} accepted (${byReplica.join(' + ')}), ${refused} refused`,
    );
    // About RPS x seconds + burst (30 here); limits per replica would let in about 90.
    expect(accepted).toBeLessThanOrEqual(Math.ceil(5 * seconds) + 10 + 2);
    expect(accepted).toBeGreaterThanOrEqual(20);
    expect(byReplica.every((n) => n > 0)).toBe(true);
    expect(refused).toBeGreaterThan(0);
  });

  it('refuses the third parked poll of a credential with LONG_WAITS_PER_CREDENTIAL=2, whichever replica it reaches', async () => {
    const worker = (await rs[0].request('POST', '/v1/keys', { name: `w-${uniq()}`, role: 'worker' }, as(admin))).body
      .token as string;
    const tag = `parked-${uniq()}`;
    const poll = (r: Api, wait_s: number) => r.request('POST', '/v1/tasks/poll', { tags: [tag], wait_s }, as(worker));
    const parked = [poll(rs[0], 4), poll(rs[1], 4)];
    await rs[0].pollsParked();
    await rs[1].pollsParked();
    const third = await poll(rs[2], 4);
    expect(third.status).toBe(429);
    expect(String(third.body.message)).toContain('on all API replicas together');
    expect((await Promise.all(parked)).map((r) => r.status)).toEqual([200, 200]);
    // Both answered, their counts given back (none left over): the credential may park two
    // again, here both on one replica, and not a third.
    const again = [poll(rs[2], 8), poll(rs[2], 8)];
    await rs[2].pollsParked(2);
    expect((await poll(rs[1], 1)).status).toBe(429);
    // One request's two tasks answer both at once: their counts go back together, and all of them.
    const wf = await rs[2].request(
      'POST',
      '/v1/workflows',
      { name: `pair-${uniq()}`, tasks: ['a', 'b'].map((name) => ({ name, tags: [tag], action: { type: 'noop' } })) },
      as(admin),
    );
    expect(wf.status).toBe(201);
    const answered = await Promise.all(again);
    expect(answered.map((r) => [r.status, r.body.tasks.length])).toEqual([
      [200, 1],
      [200, 1],
    ]);
    const last = [poll(rs[0], 4), poll(rs[1], 4)];
    await rs[0].pollsParked();
    await rs[1].pollsParked();
    expect((await poll(rs[2], 1)).status).toBe(429);
    expect((await Promise.all(last)).map((r) => r.status)).toEqual([200, 200]);
  });

  it('does the periodic work once for all: the idle database load of three replicas is about that of one', async () => {
    const lone = await Api.start({ env });
    try {
      const direct = new URL(process.env.TEST_PG_DIRECT_URL ?? (process.env.TEST_PG_URL as string));
      direct.pathname = '/postgres'; // counted apart from the databases measured
      const stats = new pg.Client({ connectionString: direct.toString() });
      await stats.connect();
      const names = [rs[0].databaseUrl, lone.databaseUrl].map((u) => new URL(u).pathname.slice(1));
      const commits = async () => {
        const { rows } = await stats.query<{ datname: string; xact_commit: string }>(
          'SELECT datname, xact_commit FROM pg_stat_database WHERE datname = ANY($1)',
          [names],
        );
        return names.map((n) => Number(rows.find((r) => r.datname === n)?.xact_commit ?? NaN));
      };
      const before = await commits();
      await new Promise((r) => setTimeout(r, 20_000)); // the measured period itself, idle by design
      const after = await commits();
      await stats.end();
      const [three, one] = after.map((n, i) => n - before[i]);
      console.log(`idle for 20 s: three replicas committed ${three} transactions, one replica ${one}`);
      expect(one).toBeGreaterThan(0);
      expect(three).toBeLessThanOrEqual(one * 1.5 + 10);
    } finally {
      await lone.stop();
    }
  }, 60_000);

  it("answers a blocking data read within 5 s of the write when its replica's bus subscription is cut", async () => {
    const wf = (await rs[1].request('POST', '/v1/workflows', workflow(), as(admin))).body as { id: string };
    const blocked = rs[0].request('GET', `/v1/workflows/${wf.id}/data/cluster.master?wait_s=20`, undefined, as(admin));
    await waitFor(
      'the read to block on replica 0',
      async () => (await rs[0].metric('tagflow_data_reads_waiting')) >= 1,
    );
    // Redis closes the subscriber of a user whose channels are taken away, and refuses its re-subscription.
    await redis.call('ACL', 'SETUSER', user.name, 'resetchannels');
    try {
      await new Promise((r) => setTimeout(r, 1000)); // the cut settles in: the read's first look after it has been
      const written = Date.now();
      const put = await rs[1].request('PUT', `/v1/workflows/${wf.id}/data/cluster.master`, { value: 'db1' }, as(admin));
      expect(put.status).toBe(200);
      const r = await blocked;
      const late = Date.now() - written;
      console.log(`blocking read with its subscription cut: answered ${late} ms after the write`);
      expect(r.body).toMatchObject({ key: 'cluster.master', value: 'db1' });
      expect(late).toBeLessThanOrEqual(5500);
      expect(rs[0].proc.exitCode).toBeNull();
    } finally {
      await redis.call('ACL', 'SETUSER', user.name, 'allchannels');
    }
  }, 30_000);

  it("gives a SIGKILLed replica's parked-wait share back within 30 s", async () => {
    const worker = (await rs[0].request('POST', '/v1/keys', { name: `k-${uniq()}`, role: 'worker' }, as(admin))).body
      .token as string;
    const tag = `share-${uniq()}`;
    const poll = (r: Api, wait_s: number) => r.request('POST', '/v1/tasks/poll', { tags: [tag], wait_s }, as(worker));
    // Left to end with their replicas (the dead one's never answers).
    const parked = [poll(rs[2], 25), poll(rs[1], 25)];
    for (const p of parked) p.catch(() => null);
    await rs[2].pollsParked();
    await rs[1].pollsParked();
    expect((await poll(rs[0], 1)).status).toBe(429);
    const killed = Date.now();
    await rs[2].kill9();
    await waitFor(
      "the dead replica's share to lapse",
      async () => {
        // A poll that parks for 1 s when it is let in (so the loop stays within RATE_LIMIT_RPS).
        const r = await poll(rs[0], 1);
        if (r.status === 200) return true;
        expect(r.body.code).toBe('TOO_MANY_WAITS');
        await new Promise((done) => setTimeout(done, 300));
        return false;
      },
      32_000,
    );
    console.log(`a SIGKILLed replica's parked wait counted for ${Date.now() - killed} ms after the kill`);
    expect(Date.now() - killed).toBeLessThanOrEqual(31_000);
  }, 60_000);
});
