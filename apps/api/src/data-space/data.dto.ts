import { Transform } from 'class-transformer';
import { IsNumber, IsOptional, Max, Min, ValidateBy } from 'class-validator';
import { isoOrNull } from '@tagflow/domain';
import type { DataEntryEntity } from '@tagflow/persistence';

/** Present in the body, whatever JSON value it holds (null included: IsDefined refuses null). */
function IsPresent(message: string): PropertyDecorator {
  return ValidateBy({
    name: 'isPresent',
    validator: { validate: (value: unknown) => value !== undefined, defaultMessage: () => message },
  });
}

export class PutDataDto {
  /** Any JSON value, null included. */
  @IsPresent('value is required (any JSON value, null included)')
  value: unknown;
}

export class DataWaitQuery {
  @IsOptional()
  @Transform(({ value }: { value: unknown }) =>
    typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value,
  )
  @IsNumber()
  @Min(0)
  @Max(300)
  wait_s?: number;
}

export interface DataEntryResponse {
  key: string;
  value: unknown;
  written_at: string | null;
  task_id: string | null;
}

export function toDataResponse(
  e: Pick<DataEntryEntity, 'key' | 'value' | 'written_at' | 'task_id'>,
): DataEntryResponse {
  return { key: e.key, value: e.value as unknown, written_at: isoOrNull(e.written_at), task_id: e.task_id };
}
