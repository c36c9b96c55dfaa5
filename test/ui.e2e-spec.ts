import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { TagflowClient, type TaskSpec } from '@tagflow/client';
import { Api, waitFor } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

/** Debian's chromium (`apt-get install -y chromium`); scripts/test.sh and .ci/run install it when missing. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Set to write the screenshots docs/ shows (docs/images/ui-*.png). */
const SCREENSHOTS = process.env.UI_SCREENSHOTS === '1';

// What the functions given to page.evaluate see: the page's globals (this file is typed for Node).
declare const window: { __marker?: number; __xss?: number; innerWidth: number };
declare const document: { documentElement: { scrollWidth: number } };
declare const sessionStorage: { getItem(key: string): string | null };
declare const localStorage: { length: number };
declare const location: { href: string };

const scratch = mkdtempSync(join(tmpdir(), 'tagflow-ui-e2e-'));
const admin = `tfk_${randomBytes(24).toString('base64url')}`;
const uniq = () => Math.random().toString(36).slice(2, 10);

async function shot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  mkdirSync('docs/images', { recursive: true });
  await page.screenshot({ path: `docs/images/${name}.png` });
}

/**
 * The web UI as a person uses it: Debian's chromium driven by playwright-core against
 * the real API (with keys), Redis, the database and a real worker.
 */
describe('the web UI in a real browser', () => {
  let api: Api;
  let worker: WorkerProcess;
  let browser: Browser;
  let page: Page;
  let client: TagflowClient;
  const tag = `ui-${uniq()}`;
  const workerName = `ui-worker-${uniq()}`;
  const policyViolations: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`no browser at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    api = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin } });
    client = new TagflowClient({ url: api.url, token: admin });
    const tokenFile = join(scratch, 'worker.token');
    writeFileSync(tokenFile, admin);
    chmodSync(tokenFile, 0o600);
    worker = await WorkerProcess.start({
      api: api.url,
      tags: [tag],
      name: workerName,
      concurrency: 4,
      args: ['--token-file', tokenFile],
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('dialog', (d) => void d.accept());
    // The content policy must not break the app: a refused script or style shows up here.
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) policyViolations.push(m.text());
    });
  });
  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    await api?.stop();
  });

  /** The h1 of a workflow or task page carries the state badge. */
  const headingState = (state: string) => page.locator(`h1 [data-state="${state}"]`);

  it('is served at /ui with a strict content policy, refuses a bad key and keeps a good one in the tab only', async () => {
    const res = await fetch(`${api.url}/ui/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    // Every answer under /ui carries the policy: pages the app routes, missing files, dotfiles, escapes.
    const policy = res.headers.get('content-security-policy');
    for (const path of ['/ui/tasks/x', '/ui/assets/missing.js', '/ui/.env', '/ui/..%2fpackage.json']) {
      const r = await fetch(`${api.url}${path}`);
      const body = await r.text();
      expect({
        path,
        status: r.status,
        policy: r.headers.get('content-security-policy'),
        page: body.includes('<div id="root">'),
      }).toEqual({ path, status: 200, policy, page: true });
    }
    // A way out of the directory finds nothing outside it.
    for (const path of ['/ui/%2e%2e/package.json', '/ui/%2e%2e/%2e%2e/package.json', '/ui/..%5c..%5cpackage.json']) {
      const r = await fetch(`${api.url}${path}`);
      expect({ path, leaked: (await r.text()).includes('"devDependencies"') }).toEqual({ path, leaked: false });
    }
    const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(await (await fetch(`${api.url}/ui/`)).text())![1];
    const asset = await fetch(`${api.url}${script}`);
    expect([
      asset.status,
      asset.headers.get('content-type'),
      asset.headers.get('cache-control'),
      asset.headers.get('content-security-policy'),
    ]).toEqual([200, expect.stringMatching(/javascript/), 'public, max-age=31536000, immutable', policy]);
    expect((await fetch(`${api.url}${script}.map`)).headers.get('content-type')).toMatch(/text\/html/); // no source map: the page instead
    expect((await fetch(`${api.url}/v1/workflows`)).headers.get('x-content-type-options')).toBe('nosniff');
    // The page holds no data: what it shows comes through calls that each need the key.
    expect((await fetch(`${api.url}/v1/workflows`)).status).toBe(401);

    await page.goto(`${api.url}/ui`);
    await page.fill('input[name=token]', `tfk_${randomBytes(24).toString('base64url')}`);
    await page.click('button[type=submit]');
    await expect(page.getByRole('alert').textContent()).resolves.toContain('did not accept this key');

    await page.fill('input[name=token]', admin);
    await page.click('button[type=submit]');
    await page.getByRole('heading', { name: 'Workflows' }).waitFor();
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('tagflow.session'),
      local: localStorage.length,
      url: location.href,
    }));
    expect(stored.session).toContain(admin);
    expect(stored.local).toBe(0);
    expect(stored.url).not.toContain(admin);
  });

  it('shows a new workflow as it is made, its task running then done with live output, cancels a waiting task and reruns a failed one, all without a reload', async () => {
    const gate = join(scratch, `gate-${uniq()}`);
    const fixed = join(scratch, `fixed-${uniq()}`);
    const hostile = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
    const shell = (command: string) => ({ type: 'shell', command });
    const tasks: TaskSpec[] = [
      {
        name: 'build',
        tags: [tag],
        produces: ['release'],
        action: shell(
          `echo 'first line'; echo '${hostile}'; while [ ! -f ${gate} ]; do sleep 0.1; done; echo 'second line'; echo '{"release": "r1"}' > "$TAGFLOW_OUTPUT"`,
        ),
      },
      { name: 'after', tags: [tag], requires: ['build'], action: shell('echo after') },
      { name: 'deploy', tags: [tag], input: { release: '{{ data.release }}' }, action: shell('echo deploy') },
      {
        name: 'flaky',
        tags: [tag],
        retry: { count: 0 },
        action: shell(`[ -f ${fixed} ] || { echo 'not ready' >&2; exit 4; }`),
      },
    ];
    await page.evaluate(() => {
      window.__marker = 42;
    });
    const name = `ui-${uniq()}`;
    // The list is open before the workflow exists: it must appear without a reload.
    const wf = await client.createWorkflow({ name, on_failure: 'continue', tasks });
    await page.locator(`[data-workflow="${name}"]`).waitFor({ timeout: 15_000 });
    await page.click(`[data-workflow="${name}"] a`);

    const graph = page.getByTestId('graph');
    await graph.locator('[data-task="build"][data-state="RUNNING"]').waitFor({ timeout: 20_000 });
    await graph.locator('[data-task="after"][data-state="WAITING"]').waitFor();
    // Data keys sit between producer and reader; tag selectors and requires are edges.
    await graph.getByText('data release').waitFor();
    // A task added while we watch appears, even one that only waits.
    await client.addTask(wf.id, { name: 'late', tags: [tag], requires: ['after'], action: shell('echo late') });
    await graph.locator('[data-task="late"][data-state="WAITING"]').waitFor({ timeout: 10_000 });
    await shot(page, 'ui-workflow');

    // Cancel the waiting task from its page; the API agrees.
    await graph.locator('[data-task="after"]').click();
    await headingState('WAITING').waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await headingState('CANCELLED').waitFor();
    const after = (await client.listTasks(wf.id)).items.find((t) => t.name === 'after')!;
    expect((await client.getTask(after.id)).state).toBe('CANCELLED');

    // The running task: its output arrives while it runs, then it finishes before our eyes.
    await page.getByTestId('workflow-link').click();
    await graph.locator('[data-task="build"]').click();
    const log = page.getByTestId('log');
    await log.getByText('first line').waitFor({ timeout: 15_000 });
    await headingState('RUNNING').waitFor();
    // What a task prints is text, never markup.
    await log.getByText(hostile).waitFor();
    writeFileSync(gate, '');
    await log.getByText('second line').waitFor({ timeout: 15_000 });
    await headingState('SUCCESS').waitFor({ timeout: 15_000 });
    await page.getByText('"release": "r1"').first().waitFor();
    await shot(page, 'ui-task');

    // The failed task: rerun it once its cause is fixed.
    const flaky = await waitFor(
      'flaky to fail',
      async () => {
        const t = (await client.listTasks(wf.id)).items.find((x) => x.name === 'flaky');
        return t?.state === 'ERROR' ? t : undefined;
      },
      20_000,
    );
    await page.getByTestId('workflow-link').click();
    await graph.locator('[data-task="flaky"][data-state="ERROR"]').click();
    await page.getByTestId('log').getByText('not ready').waitFor({ timeout: 15_000 });
    writeFileSync(fixed, '');
    await page.getByRole('button', { name: 'Rerun' }).click();
    await headingState('SUCCESS').waitFor({ timeout: 20_000 });
    expect((await client.getTask(flaky.id)).state).toBe('SUCCESS');
    await page.getByRole('heading', { name: 'Attempt 2' }).waitFor();

    await page.getByTestId('workflow-link').click();
    for (const [task, state] of [
      ['build', 'SUCCESS'],
      ['after', 'CANCELLED'],
      ['late', 'SKIPPED'],
      ['deploy', 'SUCCESS'],
      ['flaky', 'SUCCESS'],
    ]) {
      await graph.locator(`[data-task="${task}"][data-state="${state}"]`).waitFor({ timeout: 15_000 });
    }
    // The data space: who wrote the key and its value.
    await page.getByRole('link', { name: 'data space', exact: true }).click();
    const row = page.locator('[data-key="release"]');
    await row.getByRole('link', { name: 'build' }).first().waitFor();
    await row.getByRole('button', { name: 'Value' }).click();
    await page.getByText('"r1"').waitFor();

    const state = await page.evaluate(() => ({ marker: window.__marker ?? null, xss: window.__xss ?? null }));
    expect(state).toEqual({ marker: 42, xss: null }); // never reloaded; the task's markup never ran
  });

  it('seals and cancels a workflow from its page, and the API agrees', async () => {
    const wf = await client.createWorkflow({
      name: `ui-ctl-${uniq()}`,
      tasks: [{ name: 'never', tags: [`nobody-${uniq()}`], action: { type: 'shell', command: 'true' } }],
    });
    await page.goto(`${api.url}/ui/#/workflows/${wf.id}`);
    await page.getByRole('button', { name: 'Seal' }).click();
    await page.getByRole('button', { name: 'Seal' }).waitFor({ state: 'detached' });
    expect((await client.getWorkflow(wf.id)).sealed).toBe(true);
    await page.getByRole('button', { name: 'Pause' }).click();
    await headingState('PAUSED').waitFor();
    await page.getByRole('button', { name: 'Resume' }).click();
    await headingState('RUNNING').waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await headingState('CANCELLED').waitFor();
    expect((await client.getWorkflow(wf.id)).state).toBe('CANCELLED');
  });

  it('lists workers with their tags and what they run', async () => {
    await page.getByRole('link', { name: 'Workers', exact: true }).click();
    const row = page.locator(`[data-worker="${workerName}"]`);
    await row.waitFor();
    await row.getByText(tag).waitFor();
  });

  it('lists schedules and limits, pauses a schedule and runs it now', async () => {
    const name = `ui-nightly-${uniq()}`;
    const schedule = await client.createSchedule({
      name,
      cron: '0 2 * * *',
      timezone: 'Europe/Berlin',
      overlap: 'allow',
      workflow: { name, sealed: true },
    });
    await client.putLimit(`${tag}-db`, 1);
    await page.getByRole('link', { name: 'Schedules', exact: true }).click();
    const row = page.locator(`[data-schedule="${name}"]`);
    await row.getByText('0 2 * * *').waitFor();
    await page.locator(`[data-limit="${tag}-db"]`).waitFor();
    await row.getByRole('button', { name: 'Pause' }).click();
    await row.getByText('· paused').waitFor();
    expect((await client.getSchedule(schedule.id)).paused).toBe(true);
    await row.getByRole('button', { name: 'Run now' }).click();
    await row.locator('a').waitFor();
    const ran = await client.getSchedule(schedule.id);
    expect(ran.runs?.[0]).toMatchObject({ outcome: 'created', workflow_id: ran.last_workflow_id });
    await row.locator('a').click();
    await page.locator('h1').getByText(name).waitFor();
  });

  it('shows a reader what it may not do, and sends a revoked key back to sign in', async () => {
    const reader = await client.createKey({ name: `ui-reader-${uniq()}`, role: 'reader' });
    const wf = await client.createWorkflow({
      name: `ui-ro-${uniq()}`,
      tasks: [{ name: 'idle', tags: [`nobody-${uniq()}`], action: { type: 'shell', command: 'true' } }],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await context.newPage();
    p.on('dialog', (d) => void d.accept());
    await p.goto(`${api.url}/ui/`);
    await p.fill('input[name=token]', reader.token);
    await p.click('button[type=submit]');
    await p.goto(`${api.url}/ui/#/workflows/${wf.id}`);
    await p.getByRole('button', { name: 'Cancel' }).click();
    await expect(p.getByRole('alert').textContent()).resolves.toMatch(/^403: /);
    expect((await client.getWorkflow(wf.id)).state).toBe('RUNNING');

    await client.revokeKey(reader.id);
    await p.goto(`${api.url}/ui/#/workflows`);
    await p.getByRole('alert').getByText('no longer accepts this key').waitFor({ timeout: 15_000 });
    await p.locator('input[name=token]').waitFor();
    await context.close();
  });

  it('stays usable with 10,000 tasks in one workflow: groups in the graph, every task in the list', async () => {
    const wf = await client.createWorkflow({
      name: `ui-big-${uniq()}`,
      tasks: [{ name: 'prepare', tags: [`nobody-${uniq()}`], action: { type: 'shell', command: 'true' } }],
    });
    for (let b = 0; b < 10; b++) {
      const batch = Array.from({ length: 1000 }, (_, i) => {
        const n = b * 1000 + i;
        return {
          name: `node-${n}.${n % 3 === 0 ? 'restart' : 'deploy'}`,
          tags: [`rack-${n % 20}`],
          requires: ['prepare'],
          action: { type: 'shell', command: 'true' },
        };
      });
      await client.addTasks(wf.id, batch);
    }
    await page.goto(`${api.url}/ui/#/workflows/${wf.id}`);
    await page.getByText('● live').waitFor({ timeout: 30_000 });
    await page.getByText('10001 tasks drawn as 2 groups').waitFor({ timeout: 30_000 });
    const group = page.locator('[data-group="node-#.restart"]');
    await group.getByText('× 3334').waitFor();
    // A group too large to draw one by one opens in the list, filtered to it.
    await group.click();
    await page.getByText('3334 of 10001').waitFor();
    await page.getByPlaceholder('part of a name, # for a number').fill('node-9999.');
    await page.locator('[data-task="node-9999.restart"]').waitFor();
    await page.getByText('1 of 10001').waitFor();
  });

  it('reads well on a phone-sized screen: nothing wider than the screen but the tables, which scroll', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    await p.goto(`${api.url}/ui/`);
    await p.fill('input[name=token]', admin);
    await p.click('button[type=submit]');
    await p.getByRole('heading', { name: 'Workflows' }).waitFor();
    const wf = (await client.listWorkflows({ limit: 1 })).items[0];
    const task = (await client.listTasks(wf.id, { limit: 1 })).items[0];
    for (const path of [`#/workflows/${wf.id}`, `#/tasks/${task.id}`, '#/workers']) {
      await p.goto(`${api.url}/ui/${path}`);
      await p.locator('h1').first().waitFor();
      const width = await p.evaluate(() => ({ page: document.documentElement.scrollWidth, screen: window.innerWidth }));
      expect({ path, ...width }).toEqual({ path, page: width.screen, screen: width.screen });
    }
    await phone.close();
  });

  it('shows the API documentation at /docs under its content policy: every operation, and "Try it out" reaches the API', async () => {
    const docs = await browser.newPage();
    docs.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) policyViolations.push(`/docs: ${m.text()}`);
    });
    try {
      const res = await docs.goto(`${api.url}/docs`);
      expect(res?.headers()['x-frame-options']).toBe('DENY');
      await docs.locator('.swagger-ui .info .title', { hasText: 'Tagflow' }).waitFor();
      expect(await docs.locator('.opblock').count()).toBeGreaterThan(30);
      const health = docs.locator('.opblock', { hasText: '/health' }).first();
      await health.locator('.opblock-summary').click();
      await health.getByRole('button', { name: 'Try it out' }).click();
      await health.getByRole('button', { name: 'Execute' }).click();
      const status = health.locator('.live-responses-table tbody .response-col_status').first();
      await status.waitFor();
      expect((await status.innerText()).trim()).toBe('200');
    } finally {
      await docs.close();
    }
  });

  it('broke no rule of its content policy on any page it showed', () => {
    expect(policyViolations).toEqual([]);
  });
});
