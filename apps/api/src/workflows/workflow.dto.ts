import { Transform, Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsIn, IsInt, IsOptional, IsString, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { LIMITS, WORKFLOW_STATES, type WorkflowState } from '@tagflow/domain';
import type { OnFailure } from '@tagflow/persistence';
import { IsJsonObject, IsTagList, IsTaskName } from '../common/validation.js';
import { toInt } from '../common/pagination.js';
import { TaskSpecDto } from '../tasks/task.dto.js';

export class CreateWorkflowDto {
  @IsTaskName()
  name: string;

  @IsOptional() @IsString() @MaxLength(LIMITS.descriptionMaxLength)
  description?: string;

  @IsOptional() @IsTagList()
  tags?: string[];

  @IsOptional() @IsJsonObject()
  input?: Record<string, unknown>;

  @IsOptional() @IsArray() @ArrayMaxSize(LIMITS.tasksPerBatch) @ValidateNested({ each: true }) @Type(() => TaskSpecDto)
  tasks?: TaskSpecDto[];

  @IsOptional() @IsBoolean()
  sealed?: boolean;

  @IsOptional() @IsIn(['fail', 'continue', 'rollback'])
  on_failure?: OnFailure;

  /** Days the workflow is kept once finished, then deleted with its tasks, events and data (default RETENTION_DAYS). */
  @IsOptional() @IsInt() @Min(0) @Max(3650)
  retention_days?: number;
}

export class WorkflowListQuery {
  @IsOptional() @IsIn(WORKFLOW_STATES) state?: WorkflowState;
  @IsOptional() @IsString() @MaxLength(LIMITS.tagMaxLength) tag?: string;
  @IsOptional() @IsString() @MaxLength(LIMITS.nameMaxLength) name?: string;
  @IsOptional() @Transform(toInt) @IsInt() @Min(1) @Max(LIMITS.listMaxLimit) limit: number = LIMITS.listDefaultLimit;
  @IsOptional() @IsString() @MaxLength(512) cursor?: string;
}
