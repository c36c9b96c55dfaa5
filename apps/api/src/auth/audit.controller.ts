import { Controller, Get, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Database } from '@tagflow/persistence';
import { badRequest } from '../common/errors.js';
import { PageQuery } from '../common/pagination.js';
import { ADMINS, Allow, CallerOf, namespaceOf, seesAllNamespaces, type Caller } from './access.js';

@ApiTags('keys')
@Controller('v1/audit')
export class AuditController {
  constructor(private readonly db: Database) {}

  /**
   * State-changing requests, newest first: who (key), what (method, path), when, the
   * answer's status, the resource. Those of the caller's namespace (all of them for an
   * all-namespaces admin key).
   */
  @Get()
  @Allow(ADMINS)
  async list(@Query() q: PageQuery, @CallerOf() caller: Caller) {
    const before = q.cursor === undefined ? null : Number(Buffer.from(q.cursor, 'base64url').toString('utf8'));
    if (before !== null && !Number.isSafeInteger(before))
      throw badRequest('cursor is not a cursor this API returned', [{ field: 'cursor', errors: ['invalid cursor'] }]);
    const rows = await this.db
      .read()
      .audit.page(seesAllNamespaces(caller) ? undefined : namespaceOf(caller), before, q.limit);
    const more = rows.length > q.limit;
    const items = (more ? rows.slice(0, q.limit) : rows).map((r) => ({ ...r, at: new Date(r.at).toISOString() }));
    return { items, next_cursor: more ? Buffer.from(String(items[items.length - 1].id)).toString('base64url') : null };
  }
}
