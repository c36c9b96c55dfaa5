import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Api, DATABASE, shortId, task, waitFor, workflow } from './support/harness.js';
import { ClusterSetup, redisCli, SentinelSetup } from './support/redis-topologies.js';
import { WorkerProcess } from './support/worker-process.js';

/**
 * Redis as production runs it (Sentinel; Cluster), failing over under load: 1,000 tasks
 * run by real workers while the master changes by hand and then dies (SIGKILL). Nothing
 * is lost or leased twice, /health tells the truth while there is no master, and the API
 * never exits. (PostgreSQL only: the task history is read from it.)
 *
 * Each event strikes mid-run whatever the machine's speed: the first task of one group in
 * each workflow (GATED) runs until the test opens that group's gate. The test waits until
 * all of them run, starts the event, and opens the gate at once: those tasks report while
 * the event goes on, and every later group (which needs the whole group) is leased after it.
 */
const GROUPS = 8;
const WORKFLOWS = 10;
const PER_GROUP = 12; // 10 x 8 x 12 = 960 tasks, plus one root per workflow: 970
/** The gated groups: the forced failover strikes in the first, the kill in the second. */
const GATED = { failover: 1, kill: 5 };

describe('Redis failover under load', () => {
  const cleanup: (() => unknown)[] = [];
  const gates = mkdtempSync(join(tmpdir(), 'tagflow-gates-'));
  /** The gate of group g of the test that tags its tasks t: a file, there once open. */
  const gate = (t: string, g: number) => join(gates, `${t}-g${g}`);
  /** Runs until the gate opens (at most a minute, then fails: nothing outlives the suite). */
  const gated = (t: string, g: number) =>
    `i=0; until [ -e ${gate(t, g)} ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; [ -e ${gate(t, g)} ]`;
  const open = (t: string, g: number) => writeFileSync(gate(t, g), '');
  beforeAll(() => {
    if (DATABASE !== 'postgres')
      throw new Error('the failover suite reads the task history from PostgreSQL: it needs TEST_DATABASE=postgres');
  });
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
    rmSync(gates, { recursive: true, force: true });
  });

  /** Workflows of tasks in GROUPS tag-joined groups, each group a tag set of its own. */
  async function submit(api: Api, t: string): Promise<string[]> {
    const ids: string[] = [];
    for (let w = 0; w < WORKFLOWS; w++) {
      const tasks = [task('root', { tags: [t], action: { type: 'noop' } })];
      for (let g = 0; g < GROUPS; g++) {
        for (let i = 0; i < PER_GROUP; i++) {
          tasks.push(
            task(`g${g}-${i}`, {
              tags: [t, `${t}-g${g}`],
              action: { type: 'shell', command: i === 0 && isGated(g) ? gated(t, g) : 'sleep 0.05' },
              ...(g === 0 ? { requires: ['root'] } : { requires_tags: [`${t}-g${g - 1}`] }),
            }),
          );
        }
      }
      ids.push((await api.createWorkflow(workflow({ sealed: true, tasks }))).id);
    }
    return ids;
  }

  const isGated = (g: number) => g === GATED.failover || g === GATED.kill;

  /** Waits until the gated task of group g runs in every workflow (the gate is still shut). */
  async function gatedRunning(api: Api, ids: string[], t: string, g: number): Promise<void> {
    expect(existsSync(gate(t, g))).toBe(false);
    await waitFor(
      `the gated task of group ${g} running in every workflow`,
      async () => {
        for (const id of ids) if ((await api.task(id, `g${g}-0`)).state !== 'RUNNING') return false;
        return true;
      },
      60_000,
    );
  }

  async function succeeded(api: Api, ids: string[]): Promise<number> {
    let n = 0;
    for (const id of ids) n += (await api.workflow(id)).task_counts?.SUCCESS ?? 0;
    return n;
  }

  /** /health every 100 ms until stopped: the statuses seen, in order, with when. */
  function sampleHealth(api: Api): { seen: { at: number; status: number }[]; stop: () => void } {
    const seen: { at: number; status: number }[] = [];
    let on = true;
    void (async () => {
      while (on) {
        const status = await fetch(`${api.url}/health`, { signal: AbortSignal.timeout(5000) }).then(
          (r) => r.status,
          () => 0,
        );
        seen.push({ at: Date.now(), status });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    return { seen, stop: () => (on = false) };
  }

  /**
   * /health answered 503 after the kill, while there was no master, and then 200 again;
   * the sampler stops at the first 200 after a 503, or at a deadline.
   */
  async function healthyAgain(health: ReturnType<typeof sampleHealth>, killed: number): Promise<void> {
    const afterKill = () => health.seen.filter((s) => s.at > killed);
    const recovered = () => {
      const seen = afterKill();
      const down = seen.findIndex((s) => s.status === 503);
      return down >= 0 && seen.slice(down).some((s) => s.status === 200);
    };
    // At the deadline, the assertion below shows the statuses seen.
    await waitFor('/health 503 after the kill, then 200', async () => recovered(), 30_000).catch(() => undefined);
    health.stop();
    expect(
      afterKill()
        .map((s) => `${s.at - killed}:${s.status}`)
        .join(' '),
    ).toMatch(/:503 .*:200/);
  }

  /** Every attempt leased once, from the recorded history; and the first lease after `since` (ms), if any. */
  async function history(
    api: Api,
    ids: string[],
    since: number,
  ): Promise<{ twice: unknown[]; firstLeaseAfter: number | null }> {
    const db = new pg.Client({ connectionString: api.databaseUrl });
    await db.connect();
    try {
      const twice = await db.query(
        `SELECT task_id, attempt, COUNT(*)::int AS n FROM task_event WHERE workflow_id = ANY($1) AND to_state = 'RUNNING'
         GROUP BY task_id, attempt HAVING COUNT(*) > 1`,
        [ids],
      );
      const first = await db.query(
        `SELECT MIN(at)::float8 AS at FROM task_event WHERE workflow_id = ANY($1) AND to_state = 'RUNNING' AND at > $2`,
        [ids, since],
      );
      const at = first.rows[0].at as number | null;
      return { twice: twice.rows, firstLeaseAfter: at === null ? null : at - since };
    } finally {
      await db.end();
    }
  }

  /**
   * Waits for every task to succeed; when they do not, the error says where the rest stand
   * (state and attempt counts from the database) and what the API logged last.
   */
  async function allDone(api: Api, ids: string[], total: number): Promise<void> {
    try {
      await waitFor('every workflow done', async () => (await succeeded(api, ids)) === total, 120_000);
    } catch (e) {
      const db = new pg.Client({ connectionString: api.databaseUrl });
      await db.connect();
      const rest = await db
        .query(
          `SELECT state, attempt, COUNT(*)::int AS n, MIN(name) AS example FROM task
            WHERE workflow_id = ANY($1) AND state <> 'SUCCESS' GROUP BY state, attempt`,
          [ids],
        )
        .finally(() => db.end());
      const logs = api.logs.join('').split('\n').slice(-40).join('\n');
      throw new Error(`${(e as Error).message}\nnot done: ${JSON.stringify(rest.rows)}\nAPI log tail:\n${logs}`);
    }
  }

  async function workersFor(api: Api, t: string): Promise<WorkerProcess[]> {
    const caps = [t, ...Array.from({ length: GROUPS }, (_, g) => `${t}-g${g}`)];
    const workers = await Promise.all(
      [1, 2].map((i) => WorkerProcess.start({ api: api.url, tags: caps, concurrency: 16, name: `fo-${i}`, graceS: 2 })),
    );
    cleanup.push(() => Promise.all(workers.map((w) => w.kill9())));
    return workers;
  }

  it('through Sentinel: a forced failover and a SIGKILLed master mid-run lose and double nothing; /health is 503 while there is no master', async () => {
    const redis = SentinelSetup.start();
    cleanup.push(() => redis.stop());
    const api = await Api.start({
      env: { REDIS_SENTINELS: redis.sentinels, REDIS_SENTINEL_NAME: 'tagflow', REDIS_URL: '' },
    });
    cleanup.push(() => api.stop());
    const t = `sen-${shortId()}`;
    const ids = await submit(api, t);
    const total = WORKFLOWS * (GROUPS * PER_GROUP + 1);
    await workersFor(api, t);
    const health = sampleHealth(api);

    await gatedRunning(api, ids, t, GATED.failover);
    const first = redis.master();
    redis.failover();
    open(t, GATED.failover);
    await waitFor('the sentinels to name a new master', async () => redis.master() !== first, 20_000);
    // The old master takes writes until the sentinels turn it into a replica; then the API's
    // connections, refused with READONLY, move to the new one.
    await waitFor('the old master to be a replica', async () => redisCli(first, 'role').startsWith('slave'), 20_000);
    const second = redis.master();
    // Its /health probe writes there once it is (the sampler asks every 100 ms).
    const movedAfter = Date.now();
    await waitFor(
      'the API writing to the new master',
      async () => Number(redisCli(second, 'get', `${api.prefix}:health`)) > movedAfter,
      20_000,
    );

    // Slower to give up on a master, so the time without one is long enough to be seen.
    redis.set('down-after-milliseconds', '3000');
    await gatedRunning(api, ids, t, GATED.kill);
    const killed = Date.now();
    const dying = second;
    redis.kill9(dying);
    open(t, GATED.kill);
    await waitFor('a new master after the kill', async () => redis.master() !== dying, 30_000);

    await allDone(api, ids, total);
    await healthyAgain(health, killed);
    for (const id of ids) expect((await api.workflow(id)).state).toBe('SUCCESS');
    const { twice, firstLeaseAfter } = await history(api, ids, killed);
    expect(twice).toEqual([]);
    expect(firstLeaseAfter).not.toBeNull(); // the groups after the kill's were leased after it
    expect(api.proc.exitCode).toBeNull();
    console.log(
      `Sentinel: the first lease after the master was killed came ${firstLeaseAfter} ms later (down-after 3000 ms)`,
    );
  }, 240_000);

  it('through Cluster: tag sets spread over the masters; a CLUSTER FAILOVER and a SIGKILLed master mid-run lose and double nothing', async () => {
    const redis = ClusterSetup.start();
    cleanup.push(() => redis.stop());
    const api = await Api.start({ env: { REDIS_CLUSTER_NODES: redis.nodes, REDIS_URL: '' } });
    cleanup.push(() => api.stop());
    const t = `clu-${shortId()}`;
    const ids = await submit(api, t);
    const total = WORKFLOWS * (GROUPS * PER_GROUP + 1);

    // Where each tag set's queue lives: its keys share one slot, and the tag sets spread.
    const db = new pg.Client({ connectionString: api.databaseUrl });
    await db.connect();
    const tagsets = (await db.query(`SELECT DISTINCT tagset_id FROM task WHERE workflow_id = ANY($1)`, [ids])).rows.map(
      (r: { tagset_id: string }) => r.tagset_id,
    );
    await db.end();
    const owners = new Set(tagsets.map((id) => redis.masterOf(`{ts-${id}}`)));
    expect(owners.size).toBeGreaterThanOrEqual(2);

    await workersFor(api, t);
    const health = sampleHealth(api);
    await gatedRunning(api, ids, t, GATED.failover);
    const [first] = [...owners];
    redis.failoverOf(first);
    open(t, GATED.failover);
    await waitFor('the replica to take over', async () => !redis.masters().some((m) => m.port === first), 20_000);

    await gatedRunning(api, ids, t, GATED.kill);
    const victim = redis.masters().find((m) => [...owners].includes(m.port))?.port ?? redis.masters()[0].port;
    for (const p of redis.ports) redisCli(p, 'config', 'set', 'cluster-node-timeout', '3000');
    const killed = Date.now();
    redis.kill9(victim);
    open(t, GATED.kill);

    await allDone(api, ids, total);
    await healthyAgain(health, killed);
    for (const id of ids) expect((await api.workflow(id)).state).toBe('SUCCESS');
    const { twice, firstLeaseAfter } = await history(api, ids, killed);
    expect(twice).toEqual([]);
    expect(firstLeaseAfter).not.toBeNull();
    expect(api.logs.join('')).not.toMatch(/CROSSSLOT/);
    expect(api.proc.exitCode).toBeNull();
    console.log(
      `Cluster: the first lease after a master was killed came ${firstLeaseAfter} ms later (node timeout 3000 ms)`,
    );
  }, 240_000);
});
