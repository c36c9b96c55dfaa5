import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { randomUUID } from 'node:crypto';
import { reasonPhrase } from './errors.js';
import type { JsonLogger } from './logger.js';

/**
 * Every error leaves as `{statusCode, error, message, details?, request_id}`. Client
 * mistakes keep their 4xx; anything unknown becomes a plain 500 whose details stay in
 * the log under the same request id. Never a stack trace on the wire.
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: JsonLogger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<Response>();
    const req = ctx.getRequest<Request>();
    const requestId = (req.headers['x-request-id'] as string | undefined)?.slice(0, 64) ?? randomUUID();
    let status = 500;
    let body: Record<string, unknown>;

    // Nest wraps body-parser's errors in an HttpException with the original as cause.
    const parserError = isBodyParserError(exception) ? exception : exception instanceof HttpException && isBodyParserError(exception.cause) ? exception.cause : null;
    if (parserError) {
      status = parserError.status;
      body = { message: describeParserError(parserError) };
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const response = exception.getResponse();
      body = typeof response === 'string' ? { message: response } : { ...(response as Record<string, unknown>) };
      if (Array.isArray(body.message)) body.message = body.message.join('; ');
    } else {
      this.logger.event('error', 'http', 'unhandled error', {
        request_id: requestId,
        method: req.method,
        path: req.path,
        error: exception instanceof Error ? exception.message : String(exception),
        stack: exception instanceof Error ? exception.stack : undefined,
      });
      body = { message: 'internal server error' };
    }
    if (res.headersSent) return;
    res.status(status).json({ statusCode: status, error: reasonPhrase(status), ...body, request_id: requestId });
  }
}

interface BodyParserError {
  status: number;
  type: string;
  message: string;
  limit?: number;
}

function describeParserError(e: BodyParserError): string {
  switch (e.type) {
    case 'entity.too.large':
      return `request body is larger than the limit of ${e.limit} bytes`;
    case 'entity.parse.failed':
      return `request body is not valid JSON: ${e.message}`;
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return `unsupported request body encoding: ${e.message}`;
    default:
      return e.message;
  }
}

function isBodyParserError(e: unknown): e is BodyParserError {
  const err = e as Partial<BodyParserError> | null;
  return !!err && typeof err.status === 'number' && err.status >= 400 && err.status < 500 && typeof err.type === 'string';
}
