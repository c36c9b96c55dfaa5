import { Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { LIMITS, WORKFLOW_STATES, type WorkflowState } from '@tagflow/domain';
import { LimitParam, toInt } from '../common/page.dto.js';

export { CreateWorkflowDto } from '@tagflow/spec';

export class WorkflowListQuery {
  @IsOptional() @IsIn(WORKFLOW_STATES) state?: WorkflowState;
  @IsOptional() @IsString() @MaxLength(LIMITS.tagMaxLength) tag?: string;
  @IsOptional() @IsString() @MaxLength(LIMITS.nameMaxLength) name?: string;
  @LimitParam() @IsOptional() @Transform(toInt) @IsInt() @Min(1) @Max(LIMITS.listMaxLimit) limit: number =
    LIMITS.listDefaultLimit;
  @IsOptional() @IsString() @MaxLength(512) cursor?: string;
}
