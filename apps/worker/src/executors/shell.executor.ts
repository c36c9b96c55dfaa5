import { join } from 'node:path';
import { ExecutionFailure, type ExecutionResult, type Executor, type ExecutorContext } from './executor.js';
import { ENV_NAME } from './held-start.js';
import { OUTPUT_MAX_BYTES, readTaskFile, TaskFileRefused } from './task-files.js';

/**
 * `{"type": "shell", "command": "..."}` runs with `/bin/sh -c`;
 * `{"type": "shell", "script": "...", "shell": "/bin/bash"}` runs a script file.
 * Also `env: {NAME: value}` (NAME: letters, digits and _) and `cwd`. The contract with the script:
 * - $TAGFLOW_INPUT names a file holding the task's input as JSON;
 * - a JSON object written to the file named by $TAGFLOW_OUTPUT becomes the task's output;
 * - $TAGFLOW_WORKFLOW_ID, $TAGFLOW_TASK_ID and $TAGFLOW_ATTEMPT are set;
 * - exit code 0 completes the task; any other fails it with that code as the error code.
 */
export class ShellExecutor implements Executor {
  readonly type = 'shell';

  async run(ctx: ExecutorContext): Promise<ExecutionResult> {
    const action = ctx.task.action;
    const command = typeof action.command === 'string' ? action.command : undefined;
    const script = typeof action.script === 'string' ? action.script : undefined;
    if ((command === undefined) === (script === undefined)) {
      throw new ExecutionFailure('a shell action needs exactly one of "command" or "script"', 'INVALID_ACTION', false);
    }
    const env: unknown = action.env ?? {};
    if (
      typeof env !== 'object' ||
      env === null ||
      Array.isArray(env) ||
      Object.values(env).some((v) => typeof v !== 'string')
    ) {
      throw new ExecutionFailure('"env" must be an object of strings', 'INVALID_ACTION', false);
    }
    // Names a shell can export: so a task runs the same on every worker, held in a cgroup or not (held-start.ts).
    const odd = Object.keys(env).find((name) => !ENV_NAME.test(name));
    if (odd !== undefined)
      throw new ExecutionFailure(
        `"env": "${odd}" is not a variable name (letters, digits and _, not starting with a digit)`,
        'INVALID_ACTION',
        false,
      );
    const inputFile = join(ctx.workDir, 'input.json');
    const outputFile = join(ctx.workDir, 'output.json');
    await ctx.writeFile(inputFile, JSON.stringify(ctx.task.input ?? {}), 0o600);
    await ctx.writeFile(outputFile, '', 0o600);
    const vars: Record<string, string> = {
      ...(env as Record<string, string>),
      TAGFLOW_INPUT: inputFile,
      TAGFLOW_OUTPUT: outputFile,
      TAGFLOW_WORKFLOW_ID: ctx.task.workflow_id,
      TAGFLOW_TASK_ID: ctx.task.id,
      TAGFLOW_ATTEMPT: String(ctx.attempt),
    };
    const cwd = typeof action.cwd === 'string' ? action.cwd : ctx.workDir;
    let result;
    if (command !== undefined) {
      result = await ctx.run('/bin/sh', ['-c', command], { cwd, env: vars });
    } else {
      const file = join(ctx.workDir, 'script');
      await ctx.writeFile(file, script!, 0o700);
      const shell = typeof action.shell === 'string' ? action.shell : '/bin/bash';
      result = await ctx.run(shell, [file], { cwd, env: vars });
    }
    const logs = { stdout: result.stdout, stderr: result.stderr };
    if (result.exitCode !== 0) {
      const code = result.exitCode === null ? `SIGNAL_${result.signal ?? 'UNKNOWN'}` : String(result.exitCode);
      const message = result.exitCode === null ? `killed by ${result.signal}` : `exit status ${result.exitCode}`;
      return { status: 'failure', message, code, retryable: true, ...logs, exitCode: result.exitCode ?? undefined };
    }
    let read;
    try {
      read = await readTaskFile(outputFile, OUTPUT_MAX_BYTES);
    } catch (e) {
      if (!(e instanceof TaskFileRefused)) throw e;
      return {
        status: 'failure',
        message: `$TAGFLOW_OUTPUT was not read: ${e.message}`,
        code: 'INVALID_OUTPUT',
        retryable: false,
        ...logs,
        exitCode: 0,
      };
    }
    if (read.tooLarge) {
      return {
        status: 'failure',
        message: `$TAGFLOW_OUTPUT holds more than ${OUTPUT_MAX_BYTES} bytes, the largest output the API takes`,
        code: 'OUTPUT_TOO_LARGE',
        retryable: false,
        ...logs,
        exitCode: 0,
      };
    }
    const raw = read.text.trim();
    if (!raw) return { status: 'success', output: {}, ...logs, exitCode: 0 };
    let output: unknown;
    try {
      output = JSON.parse(raw);
    } catch (e) {
      return {
        status: 'failure',
        message: `$TAGFLOW_OUTPUT is not valid JSON: ${(e as Error).message}`,
        code: 'INVALID_OUTPUT',
        retryable: false,
        ...logs,
        exitCode: 0,
      };
    }
    if (typeof output !== 'object' || output === null || Array.isArray(output)) {
      return {
        status: 'failure',
        message: '$TAGFLOW_OUTPUT must hold a JSON object',
        code: 'INVALID_OUTPUT',
        retryable: false,
        ...logs,
        exitCode: 0,
      };
    }
    return { status: 'success', output: output, ...logs, exitCode: 0 };
  }
}
