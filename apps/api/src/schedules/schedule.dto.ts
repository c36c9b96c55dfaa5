import { IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import { CreateWorkflowDto, IsNested, IsTaskName } from '@tagflow/spec';

/** `POST /v1/schedules`. */
export class CreateScheduleDto {
  /** Unique in its namespace. */
  @IsTaskName()
  name: string;

  /** Five fields (minute hour day month weekday), or six with seconds first. */
  @IsString()
  @MaxLength(128)
  cron: string;

  /** IANA time zone the expression is read in (default UTC). */
  @IsOptional()
  @IsString()
  @MaxLength(64)
  timezone?: string;

  /** `skip` (default): no new workflow while the previous one is unfinished; `allow`: one per tick regardless. */
  @IsOptional()
  @IsIn(['skip', 'allow'])
  overlap?: 'skip' | 'allow';

  /** The workflow each tick creates, as POST /v1/workflows takes it; `scheduled_at` is merged into its input. */
  @IsNested(() => CreateWorkflowDto)
  workflow: CreateWorkflowDto;
}
