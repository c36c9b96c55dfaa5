import { IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import { LIMITS, WORKFLOW_STATES, type WorkflowState } from '@tagflow/domain';
import { PageQuery } from '../common/page.dto.js';

export { CreateWorkflowDto } from '@tagflow/spec';

/** A page of workflows (`limit`, `cursor`), by state, tag or name. */
export class WorkflowListQuery extends PageQuery {
  @IsOptional() @IsIn(WORKFLOW_STATES) state?: WorkflowState;
  @IsOptional() @IsString() @MaxLength(LIMITS.tagMaxLength) tag?: string;
  @IsOptional() @IsString() @MaxLength(LIMITS.nameMaxLength) name?: string;
}
