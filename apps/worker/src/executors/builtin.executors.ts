import type { ExecutionResult, Executor } from './executor.js';

/** Does nothing and succeeds: for tests, benchmarks and placeholders. */
export class NoopExecutor implements Executor {
  readonly type = 'noop';
  readonly inProcess = true;
  run(): Promise<ExecutionResult> {
    return Promise.resolve({ status: 'success', output: {} });
  }
}

/** Succeeds with the action's `output` param as the task's output. */
export class EchoExecutor implements Executor {
  readonly type = 'echo';
  readonly inProcess = true;
  run(ctx: Parameters<Executor['run']>[0]): Promise<ExecutionResult> {
    const output: unknown = ctx.task.action.output;
    const isObject = typeof output === 'object' && output !== null && !Array.isArray(output);
    return Promise.resolve({
      status: 'success',
      output: isObject ? (output as Record<string, unknown>) : { value: output ?? null },
    });
  }
}
