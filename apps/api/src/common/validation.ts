import { HttpStatus, ValidationPipe, type ValidationError } from '@nestjs/common';
import {
  flattenValidationErrors,
  passesRules,
  rulesCheckApplies,
  VALIDATE_OPTIONS,
  validateAs,
  type FieldError,
} from '@tagflow/spec';
import type { ValidatorOptions } from 'class-validator';
import { ApiError } from './errors.js';

// The rules of what clients send are shared with the command line (libs/spec).
export * from '@tagflow/spec';

export function validationFailed(fields: FieldError[]): ApiError {
  const summary = fields.map((f) => `${f.field}: ${f.errors.join(', ')}`).join('; ');
  return new ApiError(HttpStatus.BAD_REQUEST, `invalid request: ${summary}`, fields);
}

const PIPE_OPTIONS = {
  ...VALIDATE_OPTIONS,
  transform: true,
  exceptionFactory: (errors: ValidationError[]) => validationFailed(flattenValidationErrors(errors)),
};

/**
 * Nest's pipe: an object that certainly passes (passesRules) is not run through
 * class-validator again, which builds an error entry for every property even when none fails.
 */
class RulesValidationPipe extends ValidationPipe {
  protected override validate(
    object: object,
    options?: ValidatorOptions,
  ): ValidationError[] | Promise<ValidationError[]> {
    return rulesCheckApplies(options) && passesRules(object) ? [] : super.validate(object, options);
  }
}

export function createValidationPipe(): ValidationPipe {
  return new RulesValidationPipe(PIPE_OPTIONS);
}

/** Validates a body whose shape is chosen at run time (a TaskSpec, or `{tasks: [...]}`). */
export async function validateBody<T extends object>(cls: new () => T, body: unknown): Promise<T> {
  const { value, errors } = await validateAs(cls, body, 'body');
  if (errors.length > 0) throw validationFailed(errors);
  return value!;
}
