import { Injectable } from '@nestjs/common';
import { In } from 'typeorm';
import { collectReferences, readPath, resolveReferences, type Lookup } from '@tagflow/domain';
import { Database, DataEntryEntity, TaskEntity, WorkflowEntity, type JsonObject } from '@tagflow/persistence';

/**
 * Resolves a task's input references when it is handed to a worker: every referenced
 * output, workflow input and data key is loaded in one query per kind, then substituted.
 * Throws ResolutionError (code INPUT_RESOLUTION) naming the reference that has no value.
 */
@Injectable()
export class ReferenceResolver {
  constructor(private readonly db: Database) {}

  async resolve(task: Pick<TaskEntity, 'workflow_id' | 'input'>): Promise<JsonObject> {
    const { refs } = collectReferences(task.input);
    if (refs.length === 0) return task.input;
    const em = this.db.manager;
    const names = [...new Set(refs.flatMap((r) => (r.kind === 'task' ? [r.task] : [])))];
    const keys = [...new Set(refs.flatMap((r) => (r.kind === 'data' ? [r.key] : [])))];
    const tasks = names.length
      ? await em.getRepository(TaskEntity).find({ select: { name: true, state: true, output: true }, where: { workflow_id: task.workflow_id, name: In(names) } })
      : [];
    const data = keys.length
      ? await em.getRepository(DataEntryEntity).find({ select: { key: true, value: true }, where: { workflow_id: task.workflow_id, key: In(keys) } })
      : [];
    const wf = refs.some((r) => r.kind === 'workflow')
      ? await em.getRepository(WorkflowEntity).findOne({ select: { id: true, input: true }, where: { id: task.workflow_id } })
      : null;
    const byName = new Map(tasks.map((t) => [t.name, t]));
    const byKey = new Map(data.map((d) => [d.key, d.value as unknown]));
    const lookup: Lookup = (ref) => {
      switch (ref.kind) {
        case 'task': {
          const t = byName.get(ref.task);
          if (!t) return { found: false, reason: `there is no task ${ref.task}` };
          if (t.state !== 'SUCCESS') return { found: false, reason: `task ${ref.task} has no output (it is ${t.state})` };
          return readPath(t.output ?? {}, ref.path);
        }
        case 'workflow':
          return readPath(wf?.input ?? {}, ref.path);
        case 'data':
          return byKey.has(ref.key) ? { found: true, value: byKey.get(ref.key) } : { found: false, reason: `data key ${ref.key} is not written` };
      }
    };
    return resolveReferences(task.input, lookup);
  }
}
