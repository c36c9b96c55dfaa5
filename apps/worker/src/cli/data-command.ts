import { TagflowApiError, TagflowClient } from '@tagflow/client';

export const DATA_USAGE = `Usage (inside a task the worker runs):
  tagflow-worker data get KEY [--wait SECONDS]   print KEY's JSON value; wait for it up to SECONDS
  tagflow-worker data put KEY JSON               write KEY (JSON of any type; "-" reads it from stdin)
  tagflow-worker data list                       list the workflow's keys

Uses the running task's workflow and lease: TAGFLOW_API_URL, TAGFLOW_WORKFLOW_ID and
TAGFLOW_LEASE_TOKEN, which the worker sets for every task it runs.
Exit codes: 0 done, 3 the key was not written within the wait, 2 usage, 1 other errors.
`;

/** `tagflow-worker data ...`: the data space from a script on a server. Returns the exit code. */
export async function dataCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  io: { out: (s: string) => void; err: (s: string) => void; stdin: () => Promise<string> },
): Promise<number> {
  const [verb, key, ...rest] = args;
  const api = env.TAGFLOW_API_URL;
  const workflow = env.TAGFLOW_WORKFLOW_ID;
  if (!verb || verb === '--help' || verb === '-h') {
    io.out(DATA_USAGE);
    return verb ? 0 : 2;
  }
  if (!api || !workflow) {
    io.err(
      'tagflow-worker data: TAGFLOW_API_URL and TAGFLOW_WORKFLOW_ID must be set (they are, inside a task the worker runs)\n',
    );
    return 2;
  }
  const client = new TagflowClient({ url: api, token: env.TAGFLOW_LEASE_TOKEN, retry: { attempts: 5 } });
  try {
    switch (verb) {
      case 'get': {
        if (!key) break;
        let wait: number | undefined;
        if (rest[0] === '--wait') {
          wait = Number(rest[1]);
          if (!Number.isFinite(wait) || wait < 0) {
            io.err(`tagflow-worker data get: --wait needs a number of seconds (got "${rest[1]}")\n`);
            return 2;
          }
        } else if (rest.length) break;
        // Long waits go as several long-polls (the API caps one at 300 s).
        const deadline = Date.now() + (wait ?? 0) * 1000;
        for (;;) {
          const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
          const entry = await client.getData(workflow, key, Math.min(left, 300));
          if (entry) {
            io.out(JSON.stringify(entry.value) + '\n');
            return 0;
          }
          if (Date.now() >= deadline) {
            io.err(`tagflow-worker data get: ${key} was not written within ${wait ?? 0} s\n`);
            return 3;
          }
        }
      }
      case 'put': {
        if (!key || rest.length !== 1) break;
        const raw = rest[0] === '-' ? await io.stdin() : rest[0];
        let value: unknown;
        try {
          value = JSON.parse(raw);
        } catch {
          io.err(`tagflow-worker data put: the value is not JSON (quote strings: '"text"')\n`);
          return 2;
        }
        await client.putData(workflow, key, value);
        return 0;
      }
      case 'list': {
        for (const e of (await client.listData(workflow)).items) io.out(`${e.key}\t${e.written_at ?? ''}\n`);
        return 0;
      }
    }
  } catch (e) {
    io.err(
      `tagflow-worker data ${verb}: ${e instanceof TagflowApiError ? `${e.status} ${e.body?.message ?? e.message}` : (e as Error).message}\n`,
    );
    return 1;
  }
  io.err(DATA_USAGE);
  return 2;
}
