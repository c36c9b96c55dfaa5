// Decorator metadata (the types class-transformer reads): loaded before the classes below.
import 'reflect-metadata';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import { CallbackDto } from './callback.dto.js';
import { IsAction, IsDataKeyList, IsJsonObject, IsNameList, IsTagList, IsTaskName, IsZonedTime } from './validators.js';

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
  @IsObject({ each: true })
  @ValidateNested({ each: true })
  @Type(() => TaskSpecDto)
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
  @IsObject()
  @ValidateNested()
  @Type(() => RetryDto)
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
  @IsObject({ each: true })
  @ValidateNested({ each: true })
  @Type(() => OnErrorDto)
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
  @IsObject()
  @ValidateNested()
  @Type(() => CallbackDto)
  callback?: CallbackDto;
}

export class TaskBatchDto {
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(LIMITS.tasksPerBatch)
  @IsObject({ each: true })
  @ValidateNested({ each: true })
  @Type(() => TaskSpecDto)
  tasks: TaskSpecDto[];
}
