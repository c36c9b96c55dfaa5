import { Type } from 'class-transformer';
import { IsBoolean, IsDefined, IsInt, IsNumber, IsObject, IsOptional, IsString, IsUUID, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import { IsCapabilityList, IsJsonAtMost, IsJsonObject } from '../common/validation.js';

export class PollDto {
  /** Capabilities: a task fits when every tag of it is among them; `*` fits every task. */
  @IsCapabilityList()
  tags: string[];

  @IsOptional() @IsUUID()
  worker_id?: string;

  @IsOptional() @IsNumber() @Min(0) @Max(LIMITS.pollWaitMaxSeconds)
  wait_s?: number;

  @IsOptional() @IsInt() @Min(1) @Max(LIMITS.pollMaxTasks)
  max_tasks?: number;
}

export class HeartbeatDto {
  @IsString() @MaxLength(64)
  lease_token: string;

  /** Whatever the task says of its progress; kept on the task until the next heartbeat. */
  @IsOptional() @IsJsonAtMost(LIMITS.progressMaxBytes)
  progress?: unknown;
}

class ReportDto {
  @IsString() @MaxLength(64)
  lease_token: string;

  /** Longer logs are accepted and cut to their last LIMITS.logTailBytes. */
  @IsOptional() @IsString()
  stdout?: string;

  @IsOptional() @IsString()
  stderr?: string;

  @IsOptional() @IsInt() @Min(-2147483648) @Max(2147483647)
  exit_code?: number;
}

export class CompleteDto extends ReportDto {
  @IsOptional() @IsJsonObject()
  output?: Record<string, unknown>;
}

export class FailureDto {
  @IsString() @MaxLength(LIMITS.errorMessageMaxLength)
  message: string;

  @IsOptional() @IsString() @MaxLength(LIMITS.errorCodeMaxLength)
  code?: string;

  @IsOptional() @IsBoolean()
  retryable?: boolean;
}

export class FailDto extends ReportDto {
  // ValidateNested alone lets a missing object through.
  @IsDefined({ message: 'error is required: {message, code?, retryable?}' }) @IsObject() @ValidateNested() @Type(() => FailureDto)
  error: FailureDto;
}
