import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { idParam } from '../common/params.js';
import { PageQuery } from '../common/pagination.js';
import { ADMINS, Allow, CallerOf, type Caller } from './access.js';
import { CreateKeyDto } from './keys.dto.js';
import { KeysService } from './keys.service.js';

@ApiTags('keys')
@Controller('v1/keys')
export class KeysController {
  constructor(private readonly keys: KeysService) {}

  /**
   * Creates a key; the answer holds its token, shown this once. Not `@Idempotent()`: a kept
   * answer would store the token in clear for a day (an `Idempotency-Key` here is ignored).
   */
  @Post()
  @Allow(ADMINS)
  create(@Body() dto: CreateKeyDto, @CallerOf() caller: Caller) {
    return this.keys.create(
      {
        name: dto.name,
        role: dto.role,
        namespace: dto.namespace,
        tags: dto.tags,
        expires_at: dto.expires_at ? Date.parse(dto.expires_at) : null,
      },
      caller,
    );
  }

  /** Keys, newest first (never their tokens). */
  @Get()
  @Allow(ADMINS)
  list(@Query() q: PageQuery, @CallerOf() caller: Caller) {
    return this.keys.list(q, caller);
  }

  /** Revokes a key: the next request with it is 401, on every replica. */
  @Delete(':id')
  @HttpCode(204)
  @Allow(ADMINS)
  async revoke(@Param('id', idParam('key')) id: string, @CallerOf() caller: Caller): Promise<void> {
    await this.keys.revoke(id, caller);
  }
}
