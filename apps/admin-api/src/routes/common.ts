import { Type } from '@sinclair/typebox';
import { BadRequest } from '../errors.js';
import { ErrorSchema } from '../schemas.js';

const INT64_MAX = 9223372036854775807n;

/** The error answers every admin route can give (authentication, validation, rate limit, database down). */
export const commonErrors = {
  400: Type.Ref(ErrorSchema),
  401: Type.Ref(ErrorSchema),
  403: Type.Ref(ErrorSchema),
  429: Type.Ref(ErrorSchema),
  503: Type.Ref(ErrorSchema),
};

/** A path id the pattern admitted, checked against 2^63-1. */
export function parseId(text: string, name: string): bigint {
  const id = BigInt(text);
  if (id > INT64_MAX) throw new BadRequest(`${name} must be a positive 64-bit integer`);
  return id;
}
