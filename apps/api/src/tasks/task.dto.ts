import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { LIMITS, TASK_STATES, type TaskState } from '@tagflow/domain';
import { CallbackDto, OnErrorDto, RetryDto, TaskSpecDto } from '@tagflow/spec';
import {
  IsAction,
  IsDataKeyList,
  IsJsonObject,
  IsNameList,
  IsNested,
  IsTagList,
  IsTaskName,
  IsZonedTime,
} from '../common/validation.js';
import { PageQuery } from '../common/page.dto.js';

export { OnErrorDto, RetryDto, TaskBatchDto, TaskSpecDto } from '@tagflow/spec';

/** POST /v1/tasks: a task that becomes a sealed one-task workflow. */
export class ShortcutTaskDto extends TaskSpecDto {
  @IsOptional()
  @IsTaskName()
  workflow_name?: string;
}

/** PATCH /v1/tasks/:id: any TaskSpec field but the name, before the task runs. */
export class TaskPatchDto {
  @IsOptional() @IsTagList() tags?: string[];
  @IsOptional() @IsAction() action?: { type: string } & Record<string, unknown>;
  @IsOptional() @IsJsonObject() input?: Record<string, unknown>;
  @IsOptional() @IsNameList() requires?: string[];
  @IsOptional() @IsTagList() requires_tags?: string[];
  @IsOptional() @IsNested(() => RetryDto) retry?: RetryDto;
  @IsOptional() @IsInt() @Min(1) @Max(LIMITS.timeoutMaxSeconds) timeout_s?: number;
  @IsOptional() @IsInt() @Min(1) @Max(LIMITS.leaseMaxSeconds) lease_s?: number;
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(LIMITS.onErrorEntries)
  @IsNested(() => OnErrorDto, { each: true })
  on_error?: OnErrorDto[];
  @IsOptional() @IsAction() revert?: { type: string } & Record<string, unknown>;
  @IsOptional() @IsDataKeyList() produces?: string[];
  /** A new time, or null: no longer held by a time. */
  @IsOptional() @IsZonedTime() not_before?: string | null;
  @IsOptional() @IsInt() @Min(LIMITS.priorityMin) @Max(LIMITS.priorityMax) priority?: number;
  /** A new callback, or null: none. */
  @IsOptional() @IsNested(() => CallbackDto) callback?: CallbackDto | null;
}

/** A page of a workflow's tasks (`limit`, `cursor`), by state or tag. */
export class TaskListQuery extends PageQuery {
  @IsOptional() @IsIn(TASK_STATES) state?: TaskState;
  @IsOptional() @IsString() @MaxLength(LIMITS.tagMaxLength) tag?: string;
}

export class TaskWaitQuery {
  @IsOptional()
  @Transform(({ value }: { value: unknown }) =>
    typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value,
  )
  @IsNumber()
  @Min(0)
  @Max(LIMITS.taskWaitMaxSeconds)
  wait_s?: number;
}
