// Decorator metadata (the types class-transformer reads): loaded before the classes below.
import 'reflect-metadata';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import { IsNested, IsJsonObject, IsLimitMap, IsTagList, IsTaskName } from './validators.js';
import { TaskSpecDto } from './task-spec.dto.js';
import { CallbackDto } from './callback.dto.js';

export type OnFailure = 'fail' | 'continue' | 'rollback';

/** `POST /v1/workflows`, and a workflow file (`tagflow apply`). */
export class CreateWorkflowDto {
  @IsTaskName()
  name: string;

  @IsOptional()
  @IsString()
  @MaxLength(LIMITS.descriptionMaxLength)
  description?: string;

  @IsOptional()
  @IsTagList()
  tags?: string[];

  @IsOptional()
  @IsJsonObject()
  input?: Record<string, unknown>;

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(LIMITS.tasksPerBatch)
  @IsNested(() => TaskSpecDto, { each: true })
  tasks?: TaskSpecDto[];

  @IsOptional()
  @IsBoolean()
  sealed?: boolean;

  @IsOptional()
  @IsIn(['fail', 'continue', 'rollback'])
  on_failure?: OnFailure;

  /** Days the workflow is kept once finished, then deleted with its tasks, events and data (default RETENTION_DAYS). */
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(3650)
  retention_days?: number;

  /** `{TAG: n}`: at most n of its tasks carrying TAG RUNNING at once (a rolling deploy: `{"web": 2}`). */
  @IsOptional()
  @IsLimitMap()
  limits?: Record<string, number>;

  /** POSTed to (signed with its secret) when the workflow finishes. */
  @IsOptional()
  @IsNested(() => CallbackDto)
  callback?: CallbackDto;
}
