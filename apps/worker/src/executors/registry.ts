import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EchoExecutor, NoopExecutor } from './builtin.executors.js';
import type { Executor } from './executor.js';
import { ShellExecutor } from './shell.executor.js';

/** The executors a worker knows, by action type: the built-in ones plus plugins. */
export class ExecutorRegistry {
  private readonly byType = new Map<string, Executor>();

  constructor() {
    for (const e of [new ShellExecutor(), new NoopExecutor(), new EchoExecutor()]) this.add(e);
  }

  add(executor: Executor): void {
    this.byType.set(executor.type, executor);
  }

  get(type: string): Executor | undefined {
    return this.byType.get(type);
  }

  types(): string[] {
    return [...this.byType.keys()].sort();
  }

  /**
   * Loads a plugin module: its default export, or its `executors` export, is one
   * executor or a list of them (objects with `type` and `run(ctx)`).
   */
  async load(path: string): Promise<string[]> {
    const url = pathToFileURL(isAbsolute(path) ? path : resolve(process.cwd(), path)).href;
    const mod = (await import(url)) as { default?: unknown; executors?: unknown };
    const exported = mod.executors ?? mod.default;
    const list = Array.isArray(exported) ? exported : [exported];
    const loaded: string[] = [];
    for (const e of list) {
      if (!isExecutor(e))
        throw new Error(`plugin ${path} must export executors with a string "type" and a run(ctx) function`);
      this.add(e);
      loaded.push(e.type);
    }
    return loaded;
  }
}

function isExecutor(e: unknown): e is Executor {
  const x = e as Partial<Executor> | null;
  return !!x && typeof x.type === 'string' && x.type.length > 0 && typeof x.run === 'function';
}
