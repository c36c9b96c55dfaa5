import { applyDecorators, createParamDecorator, SetMetadata, type ExecutionContext } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
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

/**
 * The OpenAPI document says who may call each route too (`x-access`: `public` or the roles;
 * `x-lease-token` where a running task's lease token is let in); a public one asks no key
 * (`security: []`, common/openapi.ts).
 */
export const Public = () =>
  applyDecorators(SetMetadata(ACCESS, 'public' satisfies Access), ApiExtension('x-access', 'public'));
export const Allow = (roles: readonly Role[]) =>
  applyDecorators(SetMetadata(ACCESS, roles satisfies Access), ApiExtension('x-access', [...roles]));
export const AllowLeaseToken = () =>
  applyDecorators(SetMetadata(LEASE_TOKEN_ACCESS, true), ApiExtension('x-lease-token', true));

/**
 * Who is calling: a key (or, with no key configured on a loopback address, the local open
 * mode), or a task's live lease. `namespace` is the one the request acts in: the key's, or
 * for an all-namespaces admin key (and the open mode) the `Tagflow-Namespace` header's
 * (`default` without it). A lease acts in its task's namespace.
 */
export type Caller =
  | {
      kind: 'key';
      keyId: string;
      keyName: string;
      role: Role;
      namespace: string;
      allNamespaces: boolean;
      grants: readonly string[];
      expiresAt: number | null;
    }
  | { kind: 'open'; namespace: string }
  | { kind: 'lease'; token: string; namespace: string; task: LeaseHolder };

/** The running task a lease token belongs to (checked by the guard: a live lease in the route's workflow). */
export interface LeaseHolder {
  id: string;
  name: string;
  namespace: string;
  produces: string[];
}

export const CALLER = Symbol('tagflow:caller');

/** What a workflow or task records of who made it. */
export function createdByOf(caller: Caller): { key_id: string | null; key_name: string } | null {
  if (caller.kind === 'key') return { key_id: caller.keyId, key_name: caller.keyName };
  if (caller.kind === 'open') return { key_id: null, key_name: '(open: no key on a loopback API)' };
  return null;
}

/** Whether the caller may see and manage every namespace (an all-namespaces admin key, or the local open mode). */
export function seesAllNamespaces(caller: Caller): boolean {
  return caller.kind === 'open' || (caller.kind === 'key' && caller.allNamespaces);
}

/** The namespace the request acts in. */
export function namespaceOf(caller: Caller): string {
  return caller.namespace;
}

/** The namespace the request acts in (`@NamespaceOf() ns: string`), on routes a lease cannot call. */
export const NamespaceOf = createParamDecorator((_data: unknown, ctx: ExecutionContext): string => {
  const req = ctx.switchToHttp().getRequest<Record<symbol, Caller>>();
  return namespaceOf(req[CALLER]);
});

/** The caller the guard admitted (`@CallerOf() caller: Caller`). */
export const CallerOf = createParamDecorator((_data: unknown, ctx: ExecutionContext): Caller => {
  const req = ctx.switchToHttp().getRequest<Record<symbol, Caller>>();
  return req[CALLER];
});
