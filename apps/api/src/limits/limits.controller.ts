import { Body, Controller, Delete, Get, HttpCode, Param, Put } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Allow, CallerOf, NamespaceOf, OPERATORS, READERS, type Caller } from '../auth/access.js';
import { granted } from '../auth/grants.js';
import { ApiError } from '../common/errors.js';
import { HttpStatus } from '@nestjs/common';
import { PutLimitDto } from './limits.dto.js';
import { LimitsService } from './limits.service.js';

@ApiTags('flow control')
@Controller('v1/limits')
export class LimitsController {
  constructor(private readonly limits: LimitsService) {}

  /** The namespace's limits, by tag, each with its RUNNING and held tasks. */
  @Get()
  @Allow(READERS)
  list(@NamespaceOf() ns: string) {
    return this.limits.list(ns);
  }

  @Get(':tag')
  @Allow(READERS)
  get(@Param('tag') tag: string, @NamespaceOf() ns: string) {
    return this.limits.get(ns, tag);
  }

  /**
   * Sets (creates or changes) the limit on a tag: at most `max_running` tasks carrying it
   * RUNNING at once in the namespace. An operator's key needs the grant `*`: a limit holds
   * every task carrying the tag, whatever its other tags.
   */
  @Put(':tag')
  @Allow(OPERATORS)
  put(@Param('tag') tag: string, @Body() dto: PutLimitDto, @NamespaceOf() ns: string, @CallerOf() caller: Caller) {
    checkLimitGrants(caller, tag);
    return this.limits.put(ns, tag, dto.max_running);
  }

  @Delete(':tag')
  @HttpCode(204)
  @Allow(OPERATORS)
  async remove(@Param('tag') tag: string, @NamespaceOf() ns: string, @CallerOf() caller: Caller) {
    checkLimitGrants(caller, tag);
    await this.limits.remove(ns, tag);
  }
}

/**
 * A namespace-wide limit reaches every task carrying its tag, tasks the caller could never
 * submit included (`[linux, db]` under a limit on `linux`): an operator needs the grant `*`.
 */
function checkLimitGrants(caller: Caller, tag: string): void {
  if (caller.kind !== 'key' || caller.role === 'admin' || granted(caller.grants, '*')) return;
  throw new ApiError(
    HttpStatus.FORBIDDEN,
    `key ${caller.keyName} may not set or remove the limit on ${tag}: a namespace-wide limit holds every task with the tag, so it needs the grant * (grants: ${caller.grants.join(', ')})`,
    { tag },
    'GRANT_MISSING',
  );
}
