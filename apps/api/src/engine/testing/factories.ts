import type { TaskSpecLike } from '../task-spec.js';

/** A task that does nothing, with `extra` fields of a TaskSpec. */
export const noop = (name: string, extra: Partial<TaskSpecLike> = {}): TaskSpecLike => ({
  name,
  action: { type: 'noop' },
  ...extra,
});

/** An on_error entry running the handlers named (noop tasks), for the codes given (any code when none). */
export const onError = (handlers: string[], codes?: string[]): NonNullable<TaskSpecLike['on_error']>[number] => ({
  ...(codes ? { codes } : {}),
  run: handlers.map((h) => noop(h)),
});
