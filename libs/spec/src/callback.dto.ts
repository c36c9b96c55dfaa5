// Decorator metadata (the types class-transformer reads): loaded before the classes below.
import 'reflect-metadata';
import {
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  MinLength,
  registerDecorator,
  type ValidationArguments,
} from 'class-validator';

/** Why a callback URL is not one Tagflow can POST to, or null (its address is checked by the API). */
export function callbackUrlProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length > 2048) return 'must be at most 2048 characters';
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'must not contain control characters';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute http:// or https:// URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (url.username || url.password) return 'must not carry a user or password (sign with secret instead)';
  return null;
}

function IsCallbackUrl(): PropertyDecorator {
  return (target, key) =>
    registerDecorator({
      name: 'isCallbackUrl',
      target: target.constructor,
      propertyName: key as string,
      validator: {
        validate: (value: unknown) => callbackUrlProblem(value) === null,
        defaultMessage: (args?: ValidationArguments) => `${args?.property} ${callbackUrlProblem(args?.value) ?? ''}`,
      },
    });
}

/** `callback` on a workflow or a task: POSTed to when it finishes. */
export class CallbackDto {
  @IsCallbackUrl()
  url: string;

  /** Signs each try: `Tagflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with it>`. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(256)
  @Matches(/^[^\u0000]*$/, { message: 'secret must not contain NUL' })
  secret?: string;
}
