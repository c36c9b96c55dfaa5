// Decorator metadata (the types class-transformer reads): loaded before the classes below.
import 'reflect-metadata';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import { CallbackDto } from './callback.dto.js';
import {
  IsNested,
  IsAction,
  IsDataKeyList,
  IsJsonObject,
  IsNameList,
  IsTagList,
  IsTaskName,
  IsZonedTime,
} from './validators.js';

export class RetryDto {
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(LIMITS.retryCountMax)
  count?: number;

  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(LIMITS.delayMaxSeconds)
  delay_s?: number;

  @IsOptional()
  @IsNumber()
  @Min(1)
  @Max(10)
  backoff?: number;

  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(LIMITS.delayMaxSeconds)
  max_delay_s?: number;
}

export class OnErrorDto {
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(LIMITS.errorCodes)
  @IsString({ each: true })
  @MaxLength(LIMITS.errorCodeMaxLength, { each: true })
  codes?: string[];

  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(LIMITS.handlerTasksPerEntry)
  @IsNested(() => TaskSpecDto, { each: true })
  run: TaskSpecDto[];
}

/** What a client says about a task; everything but `action` has a default. */
export class TaskSpecDto {
  @IsOptional()
  @IsTaskName()
  name?: string;

  @IsOptional()
  @IsTagList()
  tags?: string[];

  @IsAction()
  action: { type: string } & Record<string, unknown>;

  @IsOptional()
  @IsJsonObject()
  input?: Record<string, unknown>;

  @IsOptional()
  @IsNameList()
  requires?: string[];

  @IsOptional()
  @IsTagList()
  requires_tags?: string[];

  @IsOptional()
  @IsNested(() => RetryDto)
  retry?: RetryDto;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(LIMITS.timeoutMaxSeconds)
  timeout_s?: number;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(LIMITS.leaseMaxSeconds)
  lease_s?: number;

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(LIMITS.onErrorEntries)
  @IsNested(() => OnErrorDto, { each: true })
  on_error?: OnErrorDto[];

  @IsOptional()
  @IsAction()
  revert?: { type: string } & Record<string, unknown>;

  @IsOptional()
  @IsDataKeyList()
  produces?: string[];

  /** -100..100 (default 0): higher first among ready tasks a poll fits; oldest first at equal priority. */
  @IsOptional()
  @IsInt()
  @Min(LIMITS.priorityMin)
  @Max(LIMITS.priorityMax)
  priority?: number;

  /** Not READY before this time (ISO 8601 with a zone), even with its dependencies met. */
  @IsOptional()
  @IsZonedTime()
  not_before?: string;

  /** POSTed to (signed with its secret) when the task finishes. */
  @IsOptional()
  @IsNested(() => CallbackDto)
  callback?: CallbackDto;
}

export class TaskBatchDto {
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(LIMITS.tasksPerBatch)
  @IsNested(() => TaskSpecDto, { each: true })
  tasks: TaskSpecDto[];
}
