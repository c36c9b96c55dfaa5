import { IsInt, Max, Min } from 'class-validator';
import { LIMITS } from '@tagflow/domain';

/** `PUT /v1/limits/:tag`. */
export class PutLimitDto {
  /** At most this many tasks carrying the tag RUNNING at once in the namespace; 0 holds them all. */
  @IsInt({ message: 'max_running must be an integer' })
  @Min(0)
  @Max(LIMITS.maxRunningMax)
  max_running: number;
}
