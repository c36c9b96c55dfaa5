// A Tagflow worker plugin that runs Ansible playbooks.
//
//   tagflow-worker --tags web --plugin ./examples/plugins/ansible-playbook-executor.mjs
//
// Action: {"type": "ansible-playbook", "playbook": "site.yml", "inventory": "hosts.ini",
//          "limit"?: "web01", "extra_vars"?: {...}, "check"?: false, "cwd"?: "/srv/ansible"}
// The task's input is merged into extra_vars. Output: the PLAY RECAP totals
// {ok, changed, unreachable, failed, skipped, rescued, ignored} and hosts: {host: {...}}.
// A failed or unreachable host fails the task with the playbook's exit code.
//
// An executor is an object with a `type` and `run(ctx)`; ctx gives the task, an abort
// signal, heartbeat(progress), log(), a scratch workDir, and run(command, args, options),
// which runs a process in its own group and stops it with the task.

const RECAP =
  /^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)(?:\s+skipped=(\d+))?(?:\s+rescued=(\d+))?(?:\s+ignored=(\d+))?/;

export function parseRecap(stdout) {
  const hosts = {};
  const totals = { ok: 0, changed: 0, unreachable: 0, failed: 0, skipped: 0, rescued: 0, ignored: 0 };
  let inRecap = false;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('PLAY RECAP')) {
      inRecap = true;
      continue;
    }
    if (!inRecap) continue;
    const m = RECAP.exec(line.trim());
    if (!m) continue;
    const [, host, ...counts] = m;
    const keys = Object.keys(totals);
    hosts[host] = Object.fromEntries(keys.map((k, i) => [k, Number(counts[i] ?? 0)]));
    for (const k of keys) totals[k] += hosts[host][k];
  }
  return { ...totals, hosts };
}

export default {
  type: 'ansible-playbook',
  async run(ctx) {
    const a = ctx.task.action;
    if (typeof a.playbook !== 'string' || !a.playbook) {
      return { status: 'failure', message: 'action.playbook is required', code: 'INVALID_ACTION', retryable: false };
    }
    const args = [a.playbook];
    if (typeof a.inventory === 'string') args.push('-i', a.inventory);
    if (typeof a.limit === 'string') args.push('--limit', a.limit);
    if (a.check === true) args.push('--check');
    args.push('--extra-vars', JSON.stringify({ ...(a.extra_vars ?? {}), ...ctx.task.input }));
    ctx.heartbeat({ phase: 'running', playbook: a.playbook });
    const r = await ctx.run('ansible-playbook', args, {
      cwd: typeof a.cwd === 'string' ? a.cwd : undefined,
      env: { ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0' },
    });
    const output = parseRecap(r.stdout);
    if (r.exitCode === 0) return { status: 'success', output, stdout: r.stdout, stderr: r.stderr, exitCode: 0 };
    return {
      status: 'failure',
      message: `ansible-playbook exited ${r.exitCode ?? r.signal}: ${output.failed} failed, ${output.unreachable} unreachable`,
      code: r.exitCode === null ? 'KILLED' : String(r.exitCode),
      retryable: output.unreachable > 0,
      stdout: r.stdout,
      stderr: r.stderr,
      exitCode: r.exitCode ?? undefined,
    };
  },
};
