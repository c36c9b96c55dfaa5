import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { LIMITS } from '@tagflow/domain';

export const toInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;

/** `limit` is optional for clients (the default applies), though a number once validated. */
export const LimitParam = () =>
  ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: LIMITS.listMaxLimit,
    default: LIMITS.listDefaultLimit,
    description: 'At most this many items.',
  });

export class PageQuery {
  @LimitParam()
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
