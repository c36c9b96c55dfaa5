import { IsDateString, IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { LIMITS } from '@tagflow/domain';
import type { Role } from '@tagflow/persistence';
import { IsTagGrantList } from '../common/validation.js';
import { ROLES } from './access.js';

export class CreateKeyDto {
  @IsString() @Matches(LIMITS.keyNamePattern, { message: 'name must be 1-128 characters of letters, digits, space and _.:@-' })
  name: string;

  @IsIn(ROLES as Role[], { message: `role must be one of ${ROLES.join(', ')}` })
  role: Role;

  /** Tag grants: exact tags, prefixes ending in `*` (`host:web*`), or `*` alone (the default). */
  @IsOptional() @IsTagGrantList()
  tags?: string[];

  /** When the key stops working (ISO-8601). */
  @IsOptional() @IsDateString({ strict: true }) @MaxLength(64)
  expires_at?: string;
}
