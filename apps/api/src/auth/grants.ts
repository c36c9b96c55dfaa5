import { HttpStatus } from '@nestjs/common';
import type { Repositories, WorkflowEntity } from '@tagflow/persistence';
import { ApiError } from '../common/errors.js';
import type { Caller } from './access.js';

/** Whether a grant list (exact tags, prefixes ending in `*`, or `*`) covers `tag`. */
export function granted(grants: readonly string[], tag: string): boolean {
  return grants.some((g) => g === '*' || g === tag || (g.endsWith('*') && tag.startsWith(g.slice(0, -1))));
}

/** Whether the grants cover a task with these tags (an untagged task runs anywhere: it needs `*`). */
export function coveredBy(grants: readonly string[], tags: readonly string[]): boolean {
  return tags.length === 0 ? granted(grants, '*') : tags.every((t) => granted(grants, t));
}

interface SpecTags {
  name?: string;
  tags?: readonly string[];
  on_error?: readonly { run: readonly SpecTags[] }[];
}

/** An operator may act on an existing task (change, cancel, rerun, delete) only when its grants cover the task's tags; 403 otherwise. */
export function checkTaskGrants(caller: Caller, task: { name: string; tags: readonly string[] }): void {
  if (caller.kind !== 'key' || caller.role === 'admin') return;
  if (!coveredBy(caller.grants, task.tags)) {
    throw new ApiError(
      HttpStatus.FORBIDDEN,
      `key ${caller.keyName} is not granted the tags of task ${task.name} (${task.tags.join(', ') || 'untagged'})`,
      { tags: task.tags },
      'GRANT_MISSING',
    );
  }
}

/**
 * An operator may submit only tasks all of whose tags its key grants (an untagged task
 * needs `*`), the on_error handlers they carry included (reverts run on the task's own
 * tags). 403 naming the first tag outside the grants.
 */
export function checkSubmitGrants(caller: Caller, specs: readonly SpecTags[]): void {
  if (caller.kind !== 'key' || caller.role === 'admin') return;
  const visit = (spec: SpecTags) => {
    const tags = spec.tags ?? [];
    if (tags.length === 0 && !granted(caller.grants, '*')) {
      throw new ApiError(
        HttpStatus.FORBIDDEN,
        `key ${caller.keyName} may not submit untagged task ${spec.name ?? ''}: an untagged task runs on any worker and needs the grant *`.replace(
          '  ',
          ' ',
        ),
        { tag: null },
        'GRANT_MISSING',
      );
    }
    for (const tag of tags) {
      if (!granted(caller.grants, tag))
        throw new ApiError(
          HttpStatus.FORBIDDEN,
          `key ${caller.keyName} is not granted tag ${tag} (grants: ${caller.grants.join(', ')})`,
          { tag },
          'GRANT_MISSING',
        );
    }
    for (const entry of spec.on_error ?? []) for (const run of entry.run) visit(run);
  };
  for (const spec of specs) visit(spec);
}

/**
 * A worker key may poll only with capabilities its grants cover; 403 naming the first
 * that is not. (It is also offered only tasks its grants cover: PollRequest.grants.)
 */
export function checkPollGrants(caller: Caller, tags: readonly string[]): void {
  if (caller.kind !== 'key' || caller.role === 'admin') return;
  for (const tag of tags) {
    if (!granted(caller.grants, tag))
      throw new ApiError(
        HttpStatus.FORBIDDEN,
        `key ${caller.keyName} is not granted capability ${tag} (grants: ${caller.grants.join(', ')})`,
        { tag },
        'GRANT_MISSING',
      );
  }
}

/**
 * A check run under a workflow's lock before a change to the workflow as a whole (add
 * tasks, seal, cancel, pause, resume, rerun, write its data): 403 unless the caller's
 * grants cover every tag a task of it, or a handler of one, runs on (an untagged one needs
 * `*`). Under the lock, so a task added meanwhile is counted. Absent when nothing limits
 * the caller (an admin, `*`, the open mode, a task's own lease).
 */
export type WorkflowCheck = (repos: Repositories, wf: WorkflowEntity) => Promise<void>;

export function workflowCheckFor(caller: Caller, action: string): WorkflowCheck | undefined {
  if (caller.kind !== 'key' || caller.role === 'admin' || caller.grants.includes('*')) return undefined;
  const { keyName, grants } = caller;
  return async (repos, wf) => {
    for (const tag of await repos.workflows.runTags(wf.id)) {
      if (tag === '') {
        throw new ApiError(
          HttpStatus.FORBIDDEN,
          `key ${keyName} may not ${action} workflow ${wf.id}: it has an untagged task (one that runs on any worker), which needs the grant *`,
          { tag: null },
          'GRANT_MISSING',
        );
      }
      if (!granted(grants, tag)) {
        throw new ApiError(
          HttpStatus.FORBIDDEN,
          `key ${keyName} may not ${action} workflow ${wf.id}: a task of it runs on tag ${tag}, which its grants (${grants.join(', ')}) do not cover`,
          { tag },
          'GRANT_MISSING',
        );
      }
    }
  };
}

/**
 * A namespace-wide limit reaches every task carrying its tag, tasks the caller could never
 * submit included (`[linux, db]` under a limit on `linux`): an operator needs the grant `*`.
 */
export function checkLimitGrants(caller: Caller, tag: string): void {
  if (caller.kind !== 'key' || caller.role === 'admin' || granted(caller.grants, '*')) return;
  throw new ApiError(
    HttpStatus.FORBIDDEN,
    `key ${caller.keyName} may not set or remove the limit on ${tag}: a namespace-wide limit holds every task with the tag, so it needs the grant * (grants: ${caller.grants.join(', ')})`,
    { tag },
    'GRANT_MISSING',
  );
}
