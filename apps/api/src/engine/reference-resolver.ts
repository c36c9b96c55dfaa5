import { Injectable } from '@nestjs/common';
import { collectReferences, readPath, resolveReferences, type Lookup } from '@tagflow/domain';
import { Database, type JsonObject, type TaskEntity } from '@tagflow/persistence';

/**
 * Resolves a task's input references when it is handed to a worker: every referenced
 * output, workflow input and data key is loaded in one query per kind, then substituted.
 * Throws ResolutionError (code INPUT_RESOLUTION) naming the reference that has no value.
 */
@Injectable()
export class ReferenceResolver {
  constructor(private readonly db: Database) {}

  /** The input with its references replaced; null when it has none (then the input is what the worker gets). */
  async resolve(task: Pick<TaskEntity, 'workflow_id' | 'input'>): Promise<JsonObject | null> {
    const { refs } = collectReferences(task.input);
    if (refs.length === 0) return null;
    const repos = this.db.read();
    const names = [...new Set(refs.flatMap((r) => (r.kind === 'task' ? [r.task] : [])))];
    const keys = [...new Set(refs.flatMap((r) => (r.kind === 'data' ? [r.key] : [])))];
    const byName = new Map((await repos.tasks.outputs(task.workflow_id, names)).map((t) => [t.name, t]));
    const byKey = await repos.data.values(task.workflow_id, keys);
    const wf = refs.some((r) => r.kind === 'workflow') ? await repos.workflows.get(task.workflow_id) : null;
    const lookup: Lookup = (ref) => {
      switch (ref.kind) {
        case 'task': {
          const t = byName.get(ref.task);
          if (!t) return { found: false, reason: `there is no task ${ref.task}` };
          if (t.state !== 'SUCCESS')
            return { found: false, reason: `task ${ref.task} has no output (it is ${t.state})` };
          return readPath(t.output ?? {}, ref.path);
        }
        case 'workflow':
          return readPath(wf?.input ?? {}, ref.path);
        case 'data':
          return byKey.has(ref.key)
            ? { found: true, value: byKey.get(ref.key) }
            : { found: false, reason: `data key ${ref.key} is not written` };
      }
    };
    return resolveReferences(task.input, lookup);
  }
}
