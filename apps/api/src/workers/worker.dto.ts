import { IsOptional, IsString, Matches, MaxLength, MinLength } from 'class-validator';
import type { WorkerInfo } from '@tagflow/client';
import { isoOrNull } from '@tagflow/domain';
import type { WorkerEntity } from '@tagflow/persistence';
import { IsTagList } from '../common/validation.js';

export class RegisterWorkerDto {
  @IsString() @MinLength(1) @MaxLength(128) @Matches(/^[A-Za-z0-9_.:@-]+$/, { message: 'name must match [A-Za-z0-9_.:@-]+' })
  name: string;

  @IsOptional() @IsTagList()
  tags?: string[];

  @IsOptional() @IsString() @MaxLength(255)
  hostname?: string;

  @IsOptional() @IsString() @MaxLength(64)
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
