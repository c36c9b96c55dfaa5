import { Body, Controller, Delete, Get, HttpCode, Param, Put } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Allow, CallerOf, NamespaceOf, OPERATORS, READERS, type Caller } from '../auth/access.js';
import { checkLimitGrants } from '../auth/grants.js';
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

  /** The limit on a tag, with its RUNNING and held tasks; 404 when the tag has none. */
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

  /** Removes the limit on a tag: the tasks it held are queued again at once. */
  @Delete(':tag')
  @HttpCode(204)
  @Allow(OPERATORS)
  async remove(@Param('tag') tag: string, @NamespaceOf() ns: string, @CallerOf() caller: Caller) {
    checkLimitGrants(caller, tag);
    await this.limits.remove(ns, tag);
  }
}
