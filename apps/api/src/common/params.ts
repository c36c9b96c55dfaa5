import { ParseUUIDPipe } from '@nestjs/common';
import { notFound } from './errors.js';

/** An id path parameter: anything but a UUID names nothing, so it is a 404 naming the id. */
export function idParam(what: string): ParseUUIDPipe {
  return new ParseUUIDPipe({ exceptionFactory: () => notFound(what, 'with that id') });
}
