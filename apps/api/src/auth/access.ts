import { createParamDecorator, SetMetadata, type ExecutionContext } from '@nestjs/common';
import type { Role } from '@tagflow/persistence';

/**
 * Who may call a route is written on the route: `@Public()`, or `@Allow(...roles)`
 * (admin may call every route that is not public). `@AllowLeaseToken()` also lets a
 * running task's lease token in (its own workflow's data space). A route with neither
 * is refused to everyone, and test/access.e2e-spec.ts fails.
 */
export const ACCESS = 'tagflow:access';
export const LEASE_TOKEN_ACCESS = 'tagflow:lease-token';

export type Access = 'public' | readonly Role[];

export const ROLES: readonly Role[] = ['admin', 'operator', 'reader', 'worker'];
/** Read anything. */
export const READERS: readonly Role[] = ['admin', 'operator', 'reader'];
/** Create, change, cancel, rerun, seal, pause, delete; data read and write. */
export const OPERATORS: readonly Role[] = ['admin', 'operator'];
/** Register, poll, heartbeat, report. */
export const WORKERS: readonly Role[] = ['admin', 'worker'];
export const ADMINS: readonly Role[] = ['admin'];

export const Public = () => SetMetadata(ACCESS, 'public' satisfies Access);
export const Allow = (roles: readonly Role[]) => SetMetadata(ACCESS, roles satisfies Access);
export const AllowLeaseToken = () => SetMetadata(LEASE_TOKEN_ACCESS, true);

/** Who is calling: a key (or, with no key configured on a loopback address, the local open mode), or a task's lease. */
export type Caller =
  | { kind: 'key'; keyId: string; keyName: string; role: Role; namespace: string; grants: readonly string[] }
  | { kind: 'open' }
  | { kind: 'lease'; token: string };

export const CALLER = Symbol('tagflow:caller');

/** What a workflow or task records of who made it. */
export function createdByOf(caller: Caller): { key_id: string | null; key_name: string } | null {
  if (caller.kind === 'key') return { key_id: caller.keyId, key_name: caller.keyName };
  if (caller.kind === 'open') return { key_id: null, key_name: '(open: no key on a loopback API)' };
  return null;
}

/** The caller the guard admitted (`@CallerOf() caller: Caller`). */
export const CallerOf = createParamDecorator((_data: unknown, ctx: ExecutionContext): Caller => {
  const req = ctx.switchToHttp().getRequest<Record<symbol, Caller>>();
  return req[CALLER];
});
