import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Api, waitFor } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

const scratch = mkdtempSync(join(tmpdir(), 'tagflow-cli-e2e-'));
const admin = `tfk_${randomBytes(24).toString('base64url')}`;
const uniq = () => Math.random().toString(36).slice(2, 10);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** The `tagflow` command as a user runs it: bin/tagflow.js in its own process. */
function tagflow(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/tagflow.js', ...args],
      { env: { PATH: process.env.PATH ?? '', HOME: scratch, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

function file(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

/** The command line against the real API and a real worker: workflow files, listings, output, exit codes. */
describe('the tagflow command line', () => {
  let api: Api;
  let worker: WorkerProcess;
  let env: Record<string, string>;
  const tag = `cli-${uniq()}`;
  beforeAll(async () => {
    api = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin } });
    const tokenFile = file('worker.token', admin);
    chmodSync(tokenFile, 0o600);
    worker = await WorkerProcess.start({
      api: api.url,
      tags: [tag, 'local'],
      concurrency: 2,
      args: ['--token-file', tokenFile],
    });
    env = { TAGFLOW_URL: api.url, TAGFLOW_TOKEN: admin };
  });
  afterAll(async () => {
    await worker?.stop();
    await api?.stop();
  });

  it('applies a YAML workflow file, fills its input with --set, waits for it and exits 0', async () => {
    const wfFile = file(
      'deploy.yaml',
      `# a deploy in two steps
name: cli-deploy
sealed: true
input:
  release: "1.0"
tasks:
  - name: build
    tags: [${tag}]
    action:
      type: shell
      command: echo built
  - name: ship
    tags: [${tag}]
    requires: [build]
    action: {type: shell, command: "echo shipping; echo careful >&2"}
`,
    );
    const applied = await tagflow(
      ['apply', '-f', wfFile, '--set', 'release=2.1', '--set', 'hosts=[a, b]', '--wait', '--timeout', '60'],
      env,
    );
    expect(applied).toMatchObject({ code: 0 });
    const id = /workflow (\S+) created/.exec(applied.stdout)?.[1];
    expect(applied.stdout).toContain(`workflow ${id} SUCCESS: 2 SUCCESS`);

    const described = JSON.parse((await tagflow(['describe', 'workflow', id!, '-o', 'json'], env)).stdout) as {
      input: unknown;
      tasks: { name: string; id: string }[];
    };
    expect(described.input).toEqual({ release: 2.1, hosts: ['a', 'b'] });
    const ship = described.tasks.find((t) => t.name === 'ship')!;

    const listed = await tagflow(['get', 'tasks', id!], env);
    expect(listed.stdout).toMatch(/ID\s+NAME\s+STATE/);
    expect(listed.stdout).toMatch(/ship\s+SUCCESS/);
    expect((await tagflow(['get', 'workflows', '--name', 'cli-deploy'], env)).stdout).toContain(id);

    const logs = await tagflow(['logs', ship.id], env);
    expect(logs.stdout).toBe('shipping\ncareful\n');
    expect((await tagflow(['logs', ship.id, '--stream', 'stderr'], env)).stdout).toBe('careful\n');
    const task = await tagflow(['describe', 'task', ship.id], env);
    expect(task.stdout).toMatch(/State:\s+SUCCESS/);
    expect(task.stdout).toMatch(/RUNNING\s+SUCCESS/);
  }, 90_000);

  it("runs the README's first workflow from examples/hello.yaml as the README says", async () => {
    const r = await tagflow(['apply', '-f', 'examples/hello.yaml', '--wait', '--timeout', '60'], env);
    expect(r.stdout).toMatch(/workflow \S+ SUCCESS: 2 SUCCESS, 1 ERROR\n$/);
    expect(r.code).toBe(0);
  }, 90_000);

  it('refuses a bad file before sending anything, naming file, line and column', async () => {
    const workflows = async () =>
      (
        (await api.request('GET', '/v1/workflows?limit=500', undefined, { authorization: `Bearer ${admin}` })).body as {
          items: unknown[];
        }
      ).items.length;
    const before = await workflows();
    const bad = file(
      'bad.yaml',
      `name: broken
tasks:
  - name: a
    tags: ["not a tag"]
    action: {type: shell, command: "true"}
  - name: a
    action: {type: shell, command: "true"}
    retry: {count: -1}
`,
    );
    const r = await tagflow(['apply', '-f', bad], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:4:5: tasks.0.tags: each of tags must match`);
    expect(r.stderr).toContain(`${bad}:6:5: tasks.1.name: "a" is also the name of tasks.0`);
    expect(r.stderr).toContain(`${bad}:8:13: tasks.1.retry.count: count must not be less than 0`);
    const syntax = await tagflow(['apply', '-f', file('syntax.yaml', 'name: x\ntasks: [\n')], env);
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toMatch(/syntax\.yaml:\d+:\d+: /);
    const open = await tagflow(
      ['apply', '-f', file('open.yaml', 'name: x\ntasks: [{name: a, action: {type: noop}}]\n'), '--wait'],
      env,
    );
    expect(open).toMatchObject({ code: 2 });
    expect(open.stderr).toContain('does not say "sealed: true"');
    expect((await tagflow(['apply'], env)).code).toBe(2); // no -f: a usage error
    const badSet = await tagflow(['apply', '-f', bad, '--set', 'x=[a'], env);
    expect(badSet).toMatchObject({ code: 2 });
    expect(badSet.stderr).toContain('--set:1:3: the value of x is not valid YAML');
    // The tasks together, as the API would judge them, with lines too.
    const graph = file(
      'graph.yaml',
      `name: graph
tasks:
  - name: a
    requires: [ghost]
    action: {type: noop}
  - name: b
    requires: [c]
    action: {type: noop}
  - name: c
    input: {v: "{{ tasks.b.output.v }}"}
    action: {type: noop}
`,
    );
    const g = await tagflow(['apply', '-f', graph], env);
    expect(g.code).toBe(2);
    expect(g.stderr).toContain(`${graph}:4:16: tasks.0.requires.0: no task of this workflow is named ghost`);
    expect(g.stderr).toContain(`${graph}:7:5: tasks.1.requires: dependency cycle: b -> c -> b`);
    const unknown = await tagflow(['apply', '-f', file('unknown.yaml', 'name: x\nsealed: true\npriorty: 5\n')], env);
    expect(unknown.stderr).toContain('unknown.yaml:3:1: priorty: property priorty should not exist');
    // Nothing was created by any of them.
    expect(await workflows()).toBe(before);
  });

  it('runs one command on a worker, prints its output and exits with its exit code', async () => {
    const r = await tagflow(
      ['run', '--tags', tag, '--', 'sh', '-c', 'echo "to stdout"; echo "to stderr" >&2; exit 3'],
      env,
    );
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('to stdout\n');
    expect(r.stderr).toContain('to stderr\n');
    expect(r.stderr).toMatch(/task \S+ ERROR/);
    const ok = await tagflow(['run', '--tags', tag, '--', 'echo', "it's", 'fine'], env);
    expect(ok).toMatchObject({ code: 0, stdout: "it's fine\n" });
    // Failed with exit status 0 (its output was refused): still a failure.
    const refusedOutput = await tagflow(
      ['run', '--tags', tag, '--', 'sh', '-c', 'echo not-json > "$TAGFLOW_OUTPUT"'],
      env,
    );
    expect(refusedOutput.code).toBe(1);
    expect(refusedOutput.stderr).toContain('is not valid JSON');
  }, 60_000);

  it('says when no worker takes the task, and cancels it on Ctrl-C', async () => {
    const child = spawn(
      process.execPath,
      ['bin/tagflow.js', 'run', '--tags', `nobody-${uniq()}`, '--', 'touch', '/tmp/never'],
      { env: { PATH: process.env.PATH ?? '', HOME: scratch, ...env } },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(
      'the waiting notice',
      async () => stderr.includes('waiting for a worker whose tags include nobody-'),
      15_000,
    );
    const id = /task (\S+) submitted/.exec(stderr)![1];
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    const task = (await api.request('GET', `/v1/tasks/${id}`, undefined, { authorization: `Bearer ${admin}` }))
      .body as { state: string };
    expect(task.state).toBe('CANCELLED');
  }, 60_000);

  it("sends a config file's token only to the url in that file, never to a URL from elsewhere", async () => {
    // Another API, as far as the command line can tell: it records what it is sent and answers an empty list.
    const seen: string[] = [];
    const elsewhere = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '(no authorization)');
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"items": [], "next_cursor": null}');
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    const elsewhereUrl = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`;
    try {
      const tokenFile = file('only.token', admin);
      chmodSync(tokenFile, 0o600);
      const noUrl = file('no-url.yaml', `token_file: ${tokenFile}\n`);
      const withUrl = file('with-url.yaml', `url: ${api.url}\ntoken: ${admin}\n`);
      chmodSync(withUrl, 0o600);
      // A file with a token and no url: refused, whatever URL the environment gives, and nothing is sent.
      const refused = await tagflow(['get', 'workflows'], { TAGFLOW_CONFIG: noUrl, TAGFLOW_URL: elsewhereUrl });
      expect(refused).toMatchObject({ code: 2 });
      expect(refused.stderr).toContain(`config file ${noUrl} has a token but no url`);
      // A file with a url: its token goes there only; another URL from a flag or the environment does not get it.
      const ways: { env: Record<string, string>; args: string[] }[] = [
        { env: { TAGFLOW_URL: elsewhereUrl }, args: [] },
        { env: {}, args: ['--url', elsewhereUrl] },
      ];
      for (const how of ways) {
        const r = await tagflow(['get', 'workflows', '--config', withUrl, ...how.args], how.env);
        expect(r).toMatchObject({ code: 2 });
        expect(r.stderr).toContain(`the token in config file ${withUrl} is for ${api.url}, not ${elsewhereUrl}`);
      }
      expect(seen).toEqual([]);
      // The same file with its own API works; a token given in the environment goes where the environment says.
      expect(await tagflow(['get', 'workflows', '--config', withUrl])).toMatchObject({ code: 0 });
      expect(
        await tagflow(['get', 'workflows', '--config', withUrl], { TAGFLOW_URL: api.url.replace(/\/?$/, '/') }),
      ).toMatchObject({ code: 0 });
      expect(
        await tagflow(['get', 'workflows'], { TAGFLOW_CONFIG: noUrl, TAGFLOW_URL: api.url, TAGFLOW_TOKEN: admin }),
      ).toMatchObject({ code: 0 });
      expect(
        await tagflow(['get', 'workflows'], {
          TAGFLOW_CONFIG: noUrl,
          TAGFLOW_URL: elsewhereUrl,
          TAGFLOW_TOKEN: 'tfk_meant-for-elsewhere',
        }),
      ).toMatchObject({ code: 0 });
      expect(seen).toEqual(['Bearer tfk_meant-for-elsewhere']);
    } finally {
      await new Promise((resolve) => elsewhere.close(resolve));
    }
  });

  it('seals and cancels a workflow', async () => {
    const open = file(
      'open.yaml',
      `name: open-one\ntasks: [{name: waits, tags: [nobody-${uniq()}], action: {type: noop}}]\n`,
    );
    const id = /workflow (\S+) created/.exec((await tagflow(['apply', '-f', open], env)).stdout)?.[1];
    expect((await tagflow(['seal', id!], env)).stdout).toBe(`workflow ${id} RUNNING\n`);
    expect((await tagflow(['cancel', id!], env)).stdout).toBe(`workflow ${id} CANCELLED\n`);
  });

  it('manages keys: a reader it creates reads and may not change anything, and is refused once revoked', async () => {
    const created = await tagflow(['keys', 'create', '--name', 'cli-reader', '--role', 'reader', '-o', 'json'], env);
    const key = JSON.parse(created.stdout) as { id: string; token: string };
    expect(key.token).toMatch(/^tfk_/);
    expect((await tagflow(['keys', 'list'], env)).stdout).toMatch(/cli-reader\s+reader/);
    // The reader reads, and may not change anything.
    expect((await tagflow(['get', 'workflows'], { ...env, TAGFLOW_TOKEN: key.token })).code).toBe(0);
    const wf = await api.request('POST', '/v1/workflows', { name: 'theirs' }, { authorization: `Bearer ${admin}` });
    const refused = await tagflow(['cancel', wf.body.id as string], { ...env, TAGFLOW_TOKEN: key.token });
    expect(refused).toMatchObject({ code: 1 });
    expect(refused.stderr).toContain('HTTP 403');
    expect((await tagflow(['keys', 'revoke', key.id], env)).stdout).toBe(`key ${key.id} revoked\n`);
    expect((await tagflow(['get', 'workflows'], { ...env, TAGFLOW_TOKEN: key.token })).stderr).toContain('HTTP 401');
  });

  it('says what is wrong with its settings, never quoting a token', async () => {
    // A config file: used when the environment says nothing; refused when others can read its token.
    const config = file('config.yaml', `url: ${api.url}\ntoken: ${admin}\n`);
    chmodSync(config, 0o644);
    const loose = await tagflow(['get', 'workers', '--config', config]);
    expect(loose).toMatchObject({ code: 2 });
    expect(loose.stderr).toContain(`chmod 600 ${config}`);
    chmodSync(config, 0o600);
    expect((await tagflow(['get', 'workers', '--config', config])).stdout).toMatch(/NAME\s+TAGS/);
    // A broken config file is reported by line, without quoting it (it may hold the token).
    const broken = file('broken.yaml', `url: ${api.url}\ntoken: "${admin}\n`);
    chmodSync(broken, 0o600);
    const r = await tagflow(['get', 'workers', '--config', broken]);
    expect(r).toMatchObject({ code: 2 });
    expect(r.stderr).toMatch(/is not valid YAML \(line \d+, column \d+\)/);
    expect(r.stderr).not.toContain(admin);
    // Key creation keeps no answer to replay: the token is never stored in clear.
    const create = () =>
      api.request(
        'POST',
        '/v1/keys',
        { name: 'same-name', role: 'reader' },
        { authorization: `Bearer ${admin}`, 'idempotency-key': 'same-key' },
      );
    const first = await create();
    expect(first.status).toBe(201);
    const again = await create();
    expect(again.body?.token === first.body.token).toBe(false); // not replayed (a new key, or refused)
    expect((await tagflow(['get', 'workflows'], { TAGFLOW_URL: 'ftp://nowhere' })).stderr).toContain(
      'must start with http://',
    );
  });
});
