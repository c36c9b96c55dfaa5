import type { SchemaObject } from '@nestjs/swagger';
import { getMetadataStorage, ValidationTypes } from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import {
  CallbackDto,
  CreateWorkflowDto,
  OnErrorDto,
  RetryDto,
  TaskBatchDto,
  TaskSpecDto,
  ZONED_TIME_PATTERN,
} from '@tagflow/spec';
import { CreateKeyDto } from '../auth/keys.dto.js';
import { PutDataDto } from '../data-space/data.dto.js';
import { PutLimitDto } from '../limits/limits.dto.js';
import { CreateScheduleDto } from '../schedules/schedule.dto.js';
import { AppendLogDto } from '../streams/logs.dto.js';
import { ShortcutTaskDto, TaskPatchDto } from '../tasks/task.dto.js';
import {
  BatchReportDto,
  CompleteDto,
  FailDto,
  FailureDto,
  HeartbeatDto,
  PollDto,
  ReportAndPollDto,
} from '../worker-protocol/worker-protocol.dto.js';
import { LeaseBeatDto, RegisterWorkerDto, WorkerHeartbeatDto } from '../workers/worker.dto.js';

/**
 * Every class a request body is validated as. The document's schema of each is made as
 * strict as its validation (`tightenRequestSchemas`); a `...Dto` schema in the document
 * that is missing here fails its unit test (openapi.spec.ts).
 */
export const REQUEST_CLASSES: readonly (new () => object)[] = [
  CreateWorkflowDto,
  TaskSpecDto,
  TaskBatchDto,
  RetryDto,
  OnErrorDto,
  CallbackDto,
  ShortcutTaskDto,
  TaskPatchDto,
  PollDto,
  ReportAndPollDto,
  BatchReportDto,
  FailureDto,
  HeartbeatDto,
  CompleteDto,
  FailDto,
  RegisterWorkerDto,
  WorkerHeartbeatDto,
  LeaseBeatDto,
  PutDataDto,
  CreateKeyDto,
  AppendLogDto,
  PutLimitDto,
  CreateScheduleDto,
];

type Schema = SchemaObject | { $ref: string };

/** What a rule of class-validator says in a schema, by the rule's name (custom rules: libs/spec). */
const RULES: Record<string, (constraints: unknown[]) => SchemaObject | undefined> = {
  isInt: () => ({ type: 'integer' }),
  min: ([n]) => ({ minimum: n as number }),
  max: ([n]) => ({ maximum: n as number }),
  minLength: ([n]) => ({ minLength: n as number }),
  maxLength: ([n]) => ({ maxLength: n as number }),
  arrayMinSize: ([n]) => ({ minItems: n as number }),
  arrayMaxSize: ([n]) => ({ maxItems: n as number }),
  isIn: ([values]) => ({ enum: values as unknown[] }),
  // Only a pattern JavaScript and JSON Schema read alike: no flags.
  matches: ([pattern]) => (pattern instanceof RegExp && pattern.flags === '' ? { pattern: pattern.source } : undefined),
  // Not `format: date-time`: RFC 3339 asks seconds, the API does not.
  isZonedTime: () => ({ pattern: ZONED_TIME_PATTERN.source }),
  isCallbackUrl: () => ({ format: 'uri' }),
  // Its keys are tags too; OpenAPI 3.0 has no way to say so (3.1's propertyNames).
  isLimitMap: () => ({
    type: 'object',
    maxProperties: LIMITS.limitsPerWorkflow,
    additionalProperties: { type: 'integer', minimum: 0, maximum: LIMITS.maxRunningMax },
  }),
};

/**
 * The request schemas Nest's plugin writes, made as strict as what the API validates:
 * no field beyond those declared (the API refuses unknown fields, VALIDATE_OPTIONS),
 * integers where the rule is IsInt, the patterns of names, tags and keys, and `nullable`
 * where a field is optional (class-validator's IsOptional lets null through as "not given").
 */
export function tightenRequestSchemas(schemas: Record<string, Schema>): void {
  for (const cls of REQUEST_CLASSES) {
    const schema = schemas[cls.name];
    if (!schema || '$ref' in schema) continue;
    schema.additionalProperties = false;
    const properties = (schema.properties ??= {});
    const rules = getMetadataStorage().getTargetValidationMetadatas(cls, '', true, false);
    for (const rule of rules) {
      const field = properties[rule.propertyName];
      if (!field) continue;
      if (rule.type === ValidationTypes.CONDITIONAL_VALIDATION) {
        if (rule.name === 'isOptional') properties[rule.propertyName] = nullable(field);
        continue;
      }
      const said = rule.name ? RULES[rule.name]?.(rule.constraints ?? []) : undefined;
      if (!said) continue;
      const target = rule.each ? itemsOf(field) : ownSchema(field);
      if (target) Object.assign(target, said);
    }
  }
}

/**
 * A field's schema that may also be null. A $ref is wrapped (OpenAPI 3.0 ignores a $ref's
 * siblings, and `nullable` needs a `type`); a schema of no type (any JSON) allows null already.
 */
function nullable(field: Schema): Schema {
  if ('$ref' in field) return { type: 'object', allOf: [field], nullable: true };
  if (field.allOf) return { type: 'object', ...field, nullable: true };
  return field.type ? { ...field, nullable: true } : field;
}

/** The schema a rule of the field itself adds to (not a referenced component's). */
function ownSchema(field: Schema): SchemaObject | undefined {
  return '$ref' in field || field.allOf ? undefined : field;
}

function itemsOf(field: Schema): SchemaObject | undefined {
  const own = ownSchema(field);
  const items = own?.type === 'array' ? own.items : undefined;
  return items && !('$ref' in items) ? items : undefined;
}
