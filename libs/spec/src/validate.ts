// The pipe's own walk: the add-tasks route and the command line drop the keys it drops.
import { stripProtoKeys } from '@nestjs/common/utils/strip-proto-keys.util.js';
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
 * The keys `__proto__`, `constructor` and `prototype` are deleted from `plain` first, in place,
 * as Nest's validation pipe does for every other body: class-transformer takes a
 * `constructor` key inside a free-form object (a task's `input`) for its class and throws.
 */
export async function validateAs<T extends object>(
  cls: new () => T,
  plain: unknown,
  what = 'body',
): Promise<{ value?: T; errors: FieldError[] }> {
  if (typeof plain !== 'object' || plain === null || Array.isArray(plain))
    return { errors: [{ field: what, errors: ['must be a JSON object'] }] };
  stripProtoKeys(plain);
  const value = plainToInstance(cls, plain);
  if (passesRules(value)) return { value, errors: [] };
  const errors = flattenValidationErrors(await validate(value, VALIDATE_OPTIONS));
  return errors.length > 0 ? { errors } : { value, errors };
}
