import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { Api, trackGroup } from './support/harness.js';

function runExample(name: string, api: Api): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // Its own process group: the workers it starts go with it if the test gives up on it.
    const p = trackGroup(
      spawn(process.execPath, ['examples/run.mjs', name], {
        env: { PATH: process.env.PATH ?? '', TAGFLOW_API_URL: api.url },
        detached: true,
      }),
    );
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

/** The examples of the README, run as a user runs them: workers per server, real scripts, the YAML file applied with `tagflow apply --wait`. */
describe('examples', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api.stop();
  });

  it('clustered application server: each node blocks on the config the manager publishes', async () => {
    const r = await runExample('clustered-app', api);
    expect(r.out).toMatch(/workflow \S+ created[\s\S]*workflow \S+ SUCCESS: 5 SUCCESS/); // tagflow apply's own lines
    expect(r.out).toContain('workflow SUCCESS');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/start-node2 +SUCCESS +on node2 +\{"node":"node2","config":\{"node_id":2,"heap":"1024m"/);
    expect(r.out).toContain('data keys: cluster.node1.config, cluster.node2.config, cluster.node3.config');
  });

  it('SQL cluster: prepare, pick a master, pass its address, join the replicas', async () => {
    const r = await runExample('sql-cluster', api);
    expect(r.out).toMatch(/workflow \S+ created[\s\S]*workflow \S+ SUCCESS: 8 SUCCESS/);
    expect(r.out).toContain('workflow SUCCESS');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /pick-master +SUCCESS +on db1 +\{"sql":\{"master":\{"host":"db2","address":"127.0.0.12"\}\}\}/,
    );
    expect(r.out).toMatch(/setup-db3 +SUCCESS +on db3 +\{"role":"replica","following":"127.0.0.12"\}/);
    expect(r.out).toContain('{"roles":["replica","master","replica"]}');
  });

  it('rolling restart (the README): six web servers restarted, never more than two at a time', async () => {
    const r = await runExample('rolling-restart', api);
    expect(r.out).toMatch(/workflow \S+ created[\s\S]*workflow \S+ SUCCESS: 6 SUCCESS/);
    expect(r.code).toBe(0);
    for (const n of [1, 2, 3, 4, 5, 6])
      expect(r.out).toMatch(new RegExp(`restart-web${n} +SUCCESS +on web${n} +\\{"restarted":"web${n}"\\}`));
    expect(r.out).toContain('most tasks running at once: 2');
  });
});
