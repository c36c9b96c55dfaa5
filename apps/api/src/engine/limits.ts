import type { UnitOfWork } from './unit-of-work.js';

/**
 * Tasks held by a full concurrency limit go back onto their queues as far as their limits
 * have room (LimitRepository.release), in the operation's transaction; they are queued
 * once it commits. Called when tasks left RUNNING (Engine.run), when a limit is set or
 * removed, and by the reconciler each tick (which also catches a release that raced a
 * hold on another replica).
 */
export async function releaseHeld(uow: UnitOfWork, namespaces?: readonly string[]): Promise<number> {
  const released = await uow.repos.limits.release(namespaces);
  for (const t of released) uow.taskReady(t, Math.max(0, (t.ready_at ?? 0) - uow.now));
  return released.length;
}
