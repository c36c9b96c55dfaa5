import { ArrayMaxSize, IsArray, IsOptional, IsString, IsUUID, Matches, MaxLength, MinLength } from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import { IsJsonAtMost, IsNested } from '../common/validation.js';
import type { WorkerInfo } from '@tagflow/client';
import { isoOrNull } from '@tagflow/domain';
import type { WorkerEntity } from '@tagflow/persistence';
import { IsTagList } from '../common/validation.js';

export class RegisterWorkerDto {
  @IsString()
  @MinLength(1)
  @MaxLength(128)
  @Matches(/^[A-Za-z0-9_.:@-]+$/, { message: 'name must match [A-Za-z0-9_.:@-]+' })
  name: string;

  @IsOptional()
  @IsTagList()
  tags?: string[];

  @IsOptional()
  @IsString()
  @MaxLength(255)
  hostname?: string;

  @IsOptional()
  @IsString()
  @MaxLength(64)
  version?: string;
}

export function toWorkerResponse(w: WorkerEntity, running: string[]): WorkerInfo {
  return {
    id: w.id,
    name: w.name,
    namespace: w.namespace,
    tags: w.tags,
    hostname: w.hostname,
    version: w.version,
    created_at: isoOrNull(w.created_at),
    last_seen_at: isoOrNull(w.last_seen_at),
    stopping_at: isoOrNull(w.stopping_at),
    running_task_ids: running,
  };
}

/** One lease of a worker's heartbeat. */
export class LeaseBeatDto {
  @IsUUID()
  task_id: string;

  @IsString()
  @MaxLength(64)
  lease_token: string;

  /** Whatever the task says of its progress; kept on the task until the next heartbeat. */
  @IsOptional()
  @IsJsonAtMost(LIMITS.progressMaxBytes)
  progress?: unknown;
}

/** All of a worker's leases, extended in one request. */
export class WorkerHeartbeatDto {
  @IsArray()
  @ArrayMaxSize(LIMITS.leasesPerHeartbeat)
  @IsNested(() => LeaseBeatDto, { each: true })
  leases: LeaseBeatDto[];
}
