import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { passesRules } from './rule-check.js';
import { flattenValidationErrors, type FieldError } from './validators.js';

/** How the API validates what clients send: unknown fields are errors, not dropped. */
export const VALIDATE_OPTIONS = {
  whitelist: true,
  forbidNonWhitelisted: true,
  forbidUnknownValues: true,
  validationError: { target: false, value: false },
} as const;

/**
 * Checks a parsed JSON value against a spec class the way the API will: the instance, or
 * one entry per offending field (`tasks.2.name`). `what` names a value that is not an object.
 * The keys `__proto__`, `constructor` and `prototype` are deleted from `plain` first, in place
 * (dropPrototypeKeys).
 */
export async function validateAs<T extends object>(
  cls: new () => T,
  plain: unknown,
  what = 'body',
): Promise<{ value?: T; errors: FieldError[] }> {
  if (typeof plain !== 'object' || plain === null || Array.isArray(plain))
    return { errors: [{ field: what, errors: ['must be a JSON object'] }] };
  dropPrototypeKeys(plain);
  const value = plainToInstance(cls, plain);
  if (passesRules(value)) return { value, errors: [] };
  const errors = flattenValidationErrors(await validate(value, VALIDATE_OPTIONS));
  return errors.length > 0 ? { errors } : { value, errors };
}

/** Keys that reach an object's prototype, or that class-transformer takes for one's class. */
const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype'];

/**
 * Deletes the keys `__proto__`, `constructor` and `prototype` wherever they are in a parsed
 * JSON value, as Nest's validation pipe does for every other body: class-transformer takes a
 * `constructor` key inside a free-form object (a task's `input`) for its class and throws.
 * Iterative, and each object once: a file the command line reads may be deep, or (through
 * YAML's aliases) share or repeat objects.
 */
export function dropPrototypeKeys(value: unknown): void {
  const seen = new Set<object>();
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    if (!Array.isArray(v))
      for (const k of PROTOTYPE_KEYS) if (Object.hasOwn(v, k)) delete (v as Record<string, unknown>)[k];
    for (const child of Object.values(v)) if (typeof child === 'object' && child !== null) stack.push(child);
  }
}
