import {
  Injectable,
  UseInterceptors,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import type { Observable } from 'rxjs';
import { AppConfig } from '../config/app-config.js';
import { badRequest } from '../common/errors.js';
import { blockedCallbackFields } from './addresses.js';

/** Refuses (400, naming the field) a body whose `callback.url` names a loopback or link-local host, before anything is written. */
@Injectable()
export class CallbackTargetsInterceptor implements NestInterceptor {
  constructor(private readonly config: AppConfig) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const body = ctx.switchToHttp().getRequest<{ body?: unknown }>().body;
    const blocked = blockedCallbackFields(body, this.config.CALLBACK_ALLOW_PRIVATE === '1');
    if (blocked) throw badRequest(blocked.message, [{ field: blocked.field, errors: [blocked.message] }]);
    return next.handle();
  }
}

/** On routes whose body may carry callbacks (workflows, tasks, schedules). */
export const ChecksCallbacks = () => UseInterceptors(CallbackTargetsInterceptor);
