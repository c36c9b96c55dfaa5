import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Max, MaxLength, Min, MinLength } from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import { IsUtf8At } from '../common/validation.js';

const toNumber = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;

/** `POST /v1/tasks/:id/logs`: output of the running attempt, appended to its stream. */
export class AppendLogDto {
  @IsString()
  @MaxLength(64)
  lease_token: string;

  @IsIn(['stdout', 'stderr'], { message: 'stream must be stdout or stderr' })
  stream: 'stdout' | 'stderr';

  /** 1 byte to LIMITS.logAppendMaxBytes (UTF-8) per request. */
  @IsString()
  @MinLength(1)
  @IsUtf8At(LIMITS.logAppendMaxBytes)
  data: string;
}

/** `GET /v1/tasks/:id/logs`. */
export class LogQuery {
  /** The attempt (default: the task's current one). */
  @ApiPropertyOptional({ type: 'integer' })
  @IsOptional()
  @Transform(toNumber)
  @IsInt()
  @Min(1)
  attempt?: number;

  /** One stream only (default: both, in the order written). */
  @IsOptional()
  @IsIn(['stdout', 'stderr'], { message: 'stream must be stdout or stderr' })
  stream?: 'stdout' | 'stderr';

  /** `1`: keep streaming (`text/event-stream`) until the attempt ends. */
  @IsOptional()
  @IsIn(['0', '1', 'true', 'false'], { message: 'follow must be 1 or 0' })
  follow?: string;

  /** Resume a follow after this piece (`Last-Event-ID` does the same). */
  @ApiPropertyOptional({ type: 'integer' })
  @IsOptional()
  @Transform(toNumber)
  @IsInt()
  @Min(0)
  after?: number;
}

export class WorkflowEventsQuery {
  /** `1`: keep streaming (`text/event-stream`) as transitions happen. */
  @IsOptional()
  @IsIn(['0', '1', 'true', 'false'], { message: 'follow must be 1 or 0' })
  follow?: string;

  /** Resume after this event id (`Last-Event-ID` does the same). */
  @IsOptional()
  @IsString()
  after?: string;

  /** At most this many events (default 1000); without `follow` only. */
  @ApiPropertyOptional({ type: 'integer' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
}
