import { Type } from 'class-transformer';
import type { ValidationError } from 'class-validator';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsObject,
  IsString,
  Matches,
  MaxLength,
  registerDecorator,
  ValidateNested,
  type ValidationArguments,
} from 'class-validator';
import { DATA_KEY_MAX_LENGTH, DATA_KEY_PATTERN, LIMITS } from '@tagflow/domain';

/** One entry per offending field, with its full path (`tasks.2.name`). */
export interface FieldError {
  field: string;
  errors: string[];
}

/** class-validator's constraints that check a value's type. */
const TYPE_CONSTRAINTS = new Set([
  'isInt',
  'isNumber',
  'isString',
  'isBoolean',
  'isArray',
  'isObject',
  'isDefined',
  'nestedValidation',
]);

export function flattenValidationErrors(errors: ValidationError[], parent = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const e of errors) {
    const field = parent ? `${parent}.${e.property}` : e.property;
    if (e.constraints) {
      // A value of the wrong type fails its range and length rules too ("1.5 must not be less
      // than 1"): name only what its type should be.
      let typeErrors = Object.keys(e.constraints).filter((k) => TYPE_CONSTRAINTS.has(k));
      // And the outermost type it breaks only: "must be an array", not also "each value must be
      // an object" and "nested property must be either object or array".
      if (typeErrors.includes('isArray')) typeErrors = typeErrors.filter((k) => k === 'isArray' || k === 'isDefined');
      else if (typeErrors.includes('isObject')) typeErrors = typeErrors.filter((k) => k !== 'nestedValidation');
      const names = typeErrors.length > 0 ? typeErrors : Object.keys(e.constraints);
      out.push({ field, errors: names.map((k) => e.constraints![k]) });
    }
    if (e.children?.length) out.push(...flattenValidationErrors(e.children, field));
  }
  return out;
}

// ---- Composite decorators for rules used in several DTOs ----

/**
 * An object of the class `type` returns (a list of them with `each`), checked by that class's
 * rules. It must be an object: ValidateNested alone walks a list given where one object
 * belongs, and would take `retry: [...]` for a retry.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export function IsNested(type: () => Function, options: { each?: boolean } = {}): PropertyDecorator {
  return (target, key) => {
    Type(type)(target, key);
    ValidateNested(options)(target, key);
    IsObject(options)(target, key);
  };
}

export function IsTaskName(): PropertyDecorator {
  return (target, key) => {
    IsString()(target, key);
    MaxLength(LIMITS.nameMaxLength)(target, key);
    Matches(LIMITS.namePattern, { message: `$property must match ${LIMITS.namePattern.source}` })(target, key);
  };
}

/** A list of tag-like strings: at most `max`, each at most LIMITS.tagMaxLength and matching `pattern`. */
function tagListOf(max: number, pattern: RegExp, patternMessage: string, minSize = 0): PropertyDecorator {
  return (target, key) => {
    IsArray()(target, key);
    if (minSize > 0) ArrayMinSize(minSize)(target, key);
    ArrayMaxSize(max)(target, key);
    IsString({ each: true })(target, key);
    MaxLength(LIMITS.tagMaxLength, {
      each: true,
      message: `each of $property must be at most ${LIMITS.tagMaxLength} characters`,
    })(target, key);
    Matches(pattern, { each: true, message: patternMessage })(target, key);
  };
}

export function IsTagList(max: number = LIMITS.tagsPerItem): PropertyDecorator {
  return tagListOf(max, LIMITS.tagPattern, `each of $property must match ${LIMITS.tagPattern.source}`);
}

/** A poll's capabilities: tags, or `*` alone (every task). */
export function IsCapabilityList(max: number = LIMITS.tagsPerItem): PropertyDecorator {
  return tagListOf(
    max,
    LIMITS.capabilityPattern,
    `each of $property must be a tag (${LIMITS.tagPattern.source}) or * alone`,
  );
}

/** Tag grants: tags, prefixes ending in `*`, or `*` alone. */
export function IsTagGrantList(max: number = LIMITS.tagsPerItem): PropertyDecorator {
  return tagListOf(max, LIMITS.tagGrantPattern, 'each of $property must be a tag, a prefix ending in *, or * alone', 1);
}

export function IsNameList(max: number = LIMITS.dependenciesPerTask): PropertyDecorator {
  return (target, key) => {
    IsArray()(target, key);
    ArrayMaxSize(max)(target, key);
    IsString({ each: true })(target, key);
    MaxLength(LIMITS.nameMaxLength, { each: true })(target, key);
    Matches(LIMITS.namePattern, { each: true, message: `each of $property must match ${LIMITS.namePattern.source}` })(
      target,
      key,
    );
  };
}

export function IsDataKeyList(max = 100): PropertyDecorator {
  return (target, key) => {
    IsArray()(target, key);
    ArrayMaxSize(max)(target, key);
    IsString({ each: true })(target, key);
    MaxLength(DATA_KEY_MAX_LENGTH, { each: true })(target, key);
    Matches(DATA_KEY_PATTERN, {
      each: true,
      message: 'each of $property must be a dotted name of [A-Za-z0-9_-] parts',
    })(target, key);
  };
}

/** An ISO 8601 time with its zone, to the minute at least (the API's; RFC 3339's date-time also asks seconds). */
export const ZONED_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** 2026-02-30 and 24:00 parse (as March 2, as the next day): refused, they are typos. */
function realCalendarTime(value: string): boolean {
  const [y, m, d, hh, mm, ss] = [
    value.slice(0, 4),
    value.slice(5, 7),
    value.slice(8, 10),
    value.slice(11, 13),
    value.slice(14, 16),
    value.slice(17, 19),
  ].map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  return (
    day.getUTCMonth() === m - 1 && day.getUTCDate() === d && hh <= 23 && mm <= 59 && (Number.isNaN(ss) || ss <= 59)
  );
}

/** An ISO 8601 time with its time zone (`2026-12-01T06:00:00Z`, `...+01:00`): never the server's local time. */
export function IsZonedTime(): PropertyDecorator {
  return (target, key) =>
    registerDecorator({
      name: 'isZonedTime',
      target: target.constructor,
      propertyName: key as string,
      validator: {
        validate: (value: unknown) =>
          typeof value === 'string' &&
          ZONED_TIME_PATTERN.test(value) &&
          realCalendarTime(value) &&
          Number.isFinite(Date.parse(value)),
        defaultMessage: (args?: ValidationArguments) =>
          `${args?.property} must be an ISO 8601 time with a time zone, like 2026-12-01T06:00:00Z`,
      },
    });
}

/** A plain JSON object (not an array, not null). */
export function IsJsonObject(): PropertyDecorator {
  return (target, key) =>
    registerDecorator({
      name: 'isJsonObject',
      target: target.constructor,
      propertyName: key as string,
      validator: {
        validate: (value: unknown) => isPlainObject(value),
        defaultMessage: (args?: ValidationArguments) => `${args?.property} must be a JSON object`,
      },
    });
}

/** Why a workflow's `limits` (`{TAG: max_running}`) is not acceptable, or null. */
export function limitMapProblem(value: unknown): string | null {
  if (!isPlainObject(value)) return 'must be a JSON object of tag: max_running';
  const entries = Object.entries(value);
  if (entries.length > LIMITS.limitsPerWorkflow) return `must have at most ${LIMITS.limitsPerWorkflow} tags`;
  for (const [tag, max] of entries) {
    if (tag.length > LIMITS.tagMaxLength || !LIMITS.tagPattern.test(tag))
      return `key "${tag.slice(0, 80)}" must be a tag (at most ${LIMITS.tagMaxLength} characters matching ${LIMITS.tagPattern.source})`;
    if (!Number.isInteger(max) || (max as number) < 0 || (max as number) > LIMITS.maxRunningMax)
      return `${tag} must be an integer from 0 to ${LIMITS.maxRunningMax}`;
  }
  return null;
}

/** A workflow's concurrency limits: `{TAG: max_running}`. */
export function IsLimitMap(): PropertyDecorator {
  return (target, key) =>
    registerDecorator({
      name: 'isLimitMap',
      target: target.constructor,
      propertyName: key as string,
      validator: {
        validate: (value: unknown) => limitMapProblem(value) === null,
        defaultMessage: (args?: ValidationArguments) => `${args?.property} ${limitMapProblem(args?.value) ?? ''}`,
      },
    });
}

/** Any JSON value whose text is at most `maxBytes` (a heartbeat's progress, say). */
export function IsJsonAtMost(maxBytes: number): PropertyDecorator {
  return (target, key) =>
    registerDecorator({
      name: 'isJsonAtMost',
      target: target.constructor,
      propertyName: key as string,
      validator: {
        validate: (value: unknown) => Buffer.byteLength(JSON.stringify(value) ?? '') <= maxBytes,
        defaultMessage: (args?: ValidationArguments) => `${args?.property} must be JSON of at most ${maxBytes} bytes`,
      },
    });
}

/** A string of at most `maxBytes` in UTF-8 (live output: its size on the wire, not in characters). */
export function IsUtf8At(maxBytes: number): PropertyDecorator {
  return (target, key) =>
    registerDecorator({
      name: 'isUtf8At',
      target: target.constructor,
      propertyName: key as string,
      validator: {
        validate: (value: unknown) =>
          typeof value === 'string' && value.length <= maxBytes && Buffer.byteLength(value) <= maxBytes,
        defaultMessage: (args?: ValidationArguments) =>
          `${args?.property} must be at most ${maxBytes} bytes (UTF-8); send it in parts`,
      },
    });
}

/** `{"type": "...", ...params}`: params are passed to the worker untouched. */
export function IsAction(): PropertyDecorator {
  return (target, key) =>
    registerDecorator({
      name: 'isAction',
      target: target.constructor,
      propertyName: key as string,
      validator: {
        validate: (value: unknown) =>
          isPlainObject(value) && typeof value.type === 'string' && LIMITS.actionTypePattern.test(value.type),
        defaultMessage: (args?: ValidationArguments) =>
          `${args?.property} must be an object with a "type" of 1-64 characters [A-Za-z0-9_.:-]`,
      },
    });
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
