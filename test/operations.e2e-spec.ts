import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { Api, freshDatabaseUrl, redisUrl, task, track, workflow } from './support/harness.js';

function runWithEnv(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const proc = track(
      spawn(process.execPath, ['dist/apps/api/main.js'], {
        env: { PATH: process.env.PATH ?? '', ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      }),
    );
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('exit', (code) => resolve({ code, stderr }));
  });
}

/** Starting, configuring, protecting and stopping the API. */
describe('operations', () => {
  it('refuses bad configuration, naming the variable', async () => {
    const port = await runWithEnv({ PORT: 'eighty', REDIS_URL: redisUrl() });
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('PORT="eighty"');
    const db = await runWithEnv({ DATABASE_URL: 'mysql://x', QUEUE_PREFIX: 'bad prefix!' });
    expect(db.code).toBe(2);
    expect(db.stderr).toContain('DATABASE_URL');
    expect(db.stderr).toContain('QUEUE_PREFIX');
  });

  it('says why it cannot start when Redis is not there', async () => {
    const r = await runWithEnv({ DATABASE_URL: await freshDatabaseUrl(), REDIS_URL: 'redis://127.0.0.1:1', PORT: '0' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed to start: .*(ECONNREFUSED|connect)/);
  });

  it('requires a key once one exists (API_TOKEN, deprecated, makes an admin key)', async () => {
    const api = await Api.start({ env: { API_TOKEN: 'a-long-enough-secret-token' } });
    try {
      const none = await api.get('/v1/workflows');
      expect(none.status).toBe(401);
      const wrong = await api.request('GET', '/v1/workflows', undefined, { authorization: 'Bearer nope' });
      expect(wrong.status).toBe(401); // an unknown credential is unauthenticated (contract, second edition)
      const right = await api.request('GET', '/v1/workflows', undefined, {
        authorization: 'Bearer a-long-enough-secret-token',
      });
      expect(right.status).toBe(200);
      expect((await api.get('/health')).status).toBe(200); // probes need no token
    } finally {
      await api.stop();
    }
  });

  it('with no key, starts only on loopback (open, and says so); anywhere else it refuses, saying how to make the first key', async () => {
    const refused = await runWithEnv({
      DATABASE_URL: await freshDatabaseUrl(),
      REDIS_URL: redisUrl(),
      HOST: '0.0.0.0',
      PORT: '0',
      QUEUE_PREFIX: 'tref',
    });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('refusing to listen on 0.0.0.0 with no API key');
    expect(refused.stderr).toContain('TAGFLOW_ADMIN_TOKEN');
    const open = await Api.start();
    try {
      expect(open.logs.join('')).toContain('no API key exists: the API is open');
      expect((await open.get('/v1/workflows')).status).toBe(200);
      // ...to loopback names only: a web page reaching it under another name (DNS rebinding) is refused.
      const rebound = await new Promise<number>((resolve, reject) => {
        const u = new URL(`${open.url}/v1/workflows`);
        request(
          { hostname: u.hostname, port: u.port, path: u.pathname, headers: { host: 'attacker.example:8080' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
          .on('error', reject)
          .end();
      });
      expect(rebound).toBe(401);
    } finally {
      await open.stop();
    }
  });

  it('serves the OpenAPI document at /docs, without a token, listing every route of the contract', async () => {
    const api = await Api.start({ env: { API_TOKEN: 'a-long-enough-secret-token' } });
    try {
      const page = await api.get<string>('/docs');
      expect(page.status).toBe(200);
      expect(page.body).toContain('swagger-ui');
      const doc = await api.get<{
        paths: Record<string, Record<string, unknown>>;
        components: { schemas: Record<string, any> };
      }>('/docs/json');
      expect(doc.status).toBe(200);
      const routes = Object.entries(doc.body.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      );
      const contract = [
        'POST /v1/workflows',
        'GET /v1/workflows',
        'GET /v1/workflows/{id}',
        'DELETE /v1/workflows/{id}',
        'POST /v1/workflows/{id}/seal',
        'POST /v1/workflows/{id}/cancel',
        'POST /v1/workflows/{id}/pause',
        'POST /v1/workflows/{id}/resume',
        'POST /v1/workflows/{id}/tasks',
        'GET /v1/workflows/{id}/tasks',
        'GET /v1/workflows/{id}/tasks/{task}',
        'GET /v1/tasks/{id}',
        'PATCH /v1/tasks/{id}',
        'DELETE /v1/tasks/{id}',
        'POST /v1/tasks/{id}/cancel',
        'POST /v1/tasks/{id}/rerun',
        'POST /v1/tasks',
        'POST /v1/workers',
        'POST /v1/tasks/poll',
        'POST /v1/tasks/{id}/heartbeat',
        'POST /v1/tasks/{id}/complete',
        'POST /v1/tasks/{id}/fail',
        'PUT /v1/workflows/{id}/data/{key}',
        'GET /v1/workflows/{id}/data/{key}',
        'GET /health',
        'GET /metrics',
      ];
      expect(contract.filter((r) => !routes.includes(r))).toEqual([]);
      // The request schemas carry the rules the API enforces.
      const poll = doc.body.components.schemas.PollDto;
      expect(poll.required).toEqual(['tags']);
      expect(poll.properties.wait_s).toMatchObject({ minimum: 0, maximum: 60 });
      expect(poll.properties.max_tasks).toMatchObject({ minimum: 1, maximum: 100 });
      expect(doc.body.components.schemas.TaskSpecDto.required).toContain('action');
    } finally {
      await api.stop();
    }
  });

  it('serves /docs and its files with a content policy and no framing, like /ui; /docs/json still answers', async () => {
    const api = await Api.start();
    try {
      const page = await fetch(`${api.url}/docs`);
      expect(page.status).toBe(200);
      const html = await page.text();
      const policy = page.headers.get('content-security-policy') ?? '';
      // Scripts only from the API itself (the page has no inline script); no framing by anyone.
      expect(policy).toContain("script-src 'self';");
      expect(policy).toContain("frame-ancestors 'none'");
      expect(policy).toContain("object-src 'none'");
      expect(page.headers.get('x-frame-options')).toBe('DENY');
      expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      const files = [...html.matchAll(/(?:src|href)="\.\/docs\/([^"]+)"/g)].map((m) => `/docs/${m[1]}`);
      expect(files).toEqual(
        expect.arrayContaining(['/docs/swagger-ui-bundle.js', '/docs/swagger-ui-init.js', '/docs/swagger-ui.css']),
      );
      for (const path of ['/docs/', '/docs/index.html', ...files, '/docs/json', '/docs/yaml']) {
        const r = await fetch(`${api.url}${path}`);
        await r.arrayBuffer();
        expect({
          path,
          status: r.status,
          policy: r.headers.get('content-security-policy'),
          frames: r.headers.get('x-frame-options'),
        }).toEqual({ path, status: 200, policy, frames: 'DENY' });
      }
      const doc = await fetch(`${api.url}/docs/json`);
      expect(doc.headers.get('content-type')).toMatch(/application\/json/);
      expect(((await doc.json()) as { openapi: string }).openapi).toMatch(/^3\./);
    } finally {
      await api.stop();
    }
  });

  it('stops gracefully on SIGTERM: parked polls are answered, the process exits 0, and work survives a restart', async () => {
    const api = await Api.start();
    const wf = await api.createWorkflow(workflow({ tasks: [task('kept', { tags: ['op'] })] }));
    const parked = api.poll(['nothing-here'], { wait_s: 30 });
    await api.pollsParked();
    const started = Date.now();
    expect(await api.stop()).toBe(0);
    expect(await parked).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5000);

    const again = await Api.start({ databaseUrl: api.databaseUrl, prefix: api.prefix });
    try {
      const got = await again.take(['op']);
      expect(got).toMatchObject({ name: 'kept', workflow_id: wf.id });
    } finally {
      await again.stop();
    }
  });
});
