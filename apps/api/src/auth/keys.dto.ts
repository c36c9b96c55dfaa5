import { IsDateString, IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import type { Role } from '@tagflow/persistence';
import { IsTagGrantList } from '../common/validation.js';
import { ROLES } from './access.js';

export class CreateKeyDto {
  @IsString()
  @Matches(LIMITS.keyNamePattern, { message: 'name must be 1-128 characters of letters, digits, space and _.:@-' })
  name: string;

  @IsIn(ROLES as Role[], { message: `role must be one of ${ROLES.join(', ')}` })
  role: Role;

  /**
   * The namespace the key acts in; `*` (admin keys only) for every namespace, picked per
   * request with the `Tagflow-Namespace` header. Default: the namespace the request acts in.
   */
  @IsOptional()
  @IsString()
  @Matches(/^(\*|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/, {
    message:
      'namespace must be 1-63 characters of a-z, 0-9 and - (starting and ending with a letter or digit), or * for an admin key',
  })
  namespace?: string;

  /** Tag grants: exact tags, prefixes ending in `*` (`host:web*`), or `*` alone (the default). */
  @IsOptional()
  @IsTagGrantList()
  tags?: string[];

  /** When the key stops working (ISO-8601). */
  @IsOptional()
  @IsDateString({ strict: true })
  @MaxLength(64)
  expires_at?: string;
}
