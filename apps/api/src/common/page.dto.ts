import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { LIMITS } from '@tagflow/domain';

export const toInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;

/** A page of a list: at most `limit` items, after `cursor`. */
export class PageQuery {
  /** Optional for clients (the default applies), though a number once validated. */
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: LIMITS.listMaxLimit,
    default: LIMITS.listDefaultLimit,
    description: 'At most this many items.',
  })
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(LIMITS.listMaxLimit)
  limit: number = LIMITS.listDefaultLimit;

  /** `next_cursor` of the previous page. */
  @IsOptional()
  @IsString()
  @MaxLength(512)
  cursor?: string;
}
