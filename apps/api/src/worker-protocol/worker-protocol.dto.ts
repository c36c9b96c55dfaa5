import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsDefined,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  IsUUID,
  Max,
  MaxLength,
  Min,
  ValidateIf,
} from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import { IsCapabilityList, IsJsonAtMost, IsJsonObject, IsNested } from '../common/validation.js';

export class PollDto {
  /** Capabilities: a task fits when every tag of it is among them; `*` fits every task. */
  @IsCapabilityList()
  tags: string[];

  @IsOptional()
  @IsUUID()
  worker_id?: string;

  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(LIMITS.pollWaitMaxSeconds)
  wait_s?: number;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(LIMITS.pollMaxTasks)
  max_tasks?: number;
}

export class HeartbeatDto {
  @IsString()
  @MaxLength(64)
  lease_token: string;

  /** Whatever the task says of its progress; kept on the task until the next heartbeat. */
  @IsOptional()
  @IsJsonAtMost(LIMITS.progressMaxBytes)
  progress?: unknown;
}

class ReportDto {
  @IsString()
  @MaxLength(64)
  lease_token: string;

  /** Longer logs are accepted and cut to their last LIMITS.logTailBytes. */
  @IsOptional()
  @IsString()
  stdout?: string;

  @IsOptional()
  @IsString()
  stderr?: string;

  @IsOptional()
  @IsInt()
  @Min(-2147483648)
  @Max(2147483647)
  exit_code?: number;
}

export class CompleteDto extends ReportDto {
  @IsOptional()
  @IsJsonObject()
  output?: Record<string, unknown>;
}

export class FailureDto {
  @IsString()
  @MaxLength(LIMITS.errorMessageMaxLength)
  message: string;

  @IsOptional()
  @IsString()
  @MaxLength(LIMITS.errorCodeMaxLength)
  code?: string;

  @IsOptional()
  @IsBoolean()
  retryable?: boolean;
}

export class FailDto extends ReportDto {
  // ValidateNested alone lets a missing object through.
  @IsDefined({ message: 'error is required: {message, code?, retryable?}' })
  @IsNested(() => FailureDto)
  error: FailureDto;
}

/** One report of a batch (`POST /v1/tasks/report`): a complete or a fail, as the single routes take them. */
export class BatchReportDto extends ReportDto {
  @IsUUID()
  task_id: string;

  @IsIn(['complete', 'fail'], { message: 'status must be complete or fail' })
  status: 'complete' | 'fail';

  @IsOptional()
  @IsJsonObject()
  output?: Record<string, unknown>;

  @ValidateIf((r: BatchReportDto) => r.status === 'fail')
  @IsDefined({ message: 'error is required when status is fail: {message, code?, retryable?}' })
  @IsNested(() => FailureDto)
  error?: FailureDto;
}

/** Reports of a worker's finished tasks and, optionally, its next poll, in one request. */
export class ReportAndPollDto {
  @IsArray()
  @ArrayMaxSize(LIMITS.reportsPerRequest)
  @IsNested(() => BatchReportDto, { each: true })
  reports: BatchReportDto[];

  @IsOptional()
  @IsNested(() => PollDto)
  poll?: PollDto;
}
