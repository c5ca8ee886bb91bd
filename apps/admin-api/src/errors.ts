import type { FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable, isDataException } from '@foodies/db';
import { AuthError } from './auth.js';

/** A request value the schemas admit but the API cannot serve (an id beyond 2^63-1, text PostgreSQL cannot hold). */
export class BadRequest extends Error {
  readonly statusCode = 400;
}

/** No payment under the id asked for, or no route at the path. */
export class NotFound extends Error {
  readonly statusCode = 404;
}

/** What reaches the error handler: our classes, Fastify's (validation, rate limit) and anything thrown below. */
type RequestError = Error & { statusCode?: number };

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** How one error is answered: its status, the message the caller may see, extra headers, and what is logged. */
interface ErrorAnswer {
  statusCode: number;
  message: string;
  headers?: Record<string, string>;
  log?: { level: 'warn' | 'error'; msg: string };
}

function answerFor(error: RequestError): ErrorAnswer {
  // The database is down or cut off: the caller may retry; nothing internal is said.
  if (isDatabaseUnavailable(error)) {
    return {
      statusCode: 503,
      message: 'the payment database is unavailable; try again later',
      headers: { 'retry-after': '5' },
      log: { level: 'warn', msg: 'database unavailable' },
    };
  }
  // A value the database refused (a data exception the checks before it did not foresee) is the caller's, not ours.
  if (isDataException(error)) {
    return {
      statusCode: 400,
      message: 'a request value cannot be stored or compared',
      log: { level: 'warn', msg: 'database refused a request value' },
    };
  }
  const statusCode = error.statusCode ?? 500;
  if (statusCode === 503) return { statusCode, message: error.message, log: { level: 'warn', msg: 'dependency unavailable' } };
  if (statusCode >= 500) return { statusCode: 500, message: 'internal error', log: { level: 'error', msg: 'request failed' } };
  if (statusCode === 401 && error instanceof AuthError)
    return { statusCode, message: error.message, headers: { 'www-authenticate': 'Bearer' } };
  // Authentication, validation, not found, rate limit: the message is written for the caller.
  return { statusCode, message: error.message };
}

/**
 * The one error handler: every failure of a request becomes `{ statusCode, error, message }`
 * (schemas.ts ErrorSchema). A 5xx says nothing internal; the error is logged with its cause.
 */
export function replyWithError(error: RequestError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { statusCode, message, headers = {}, log } = answerFor(error);
  if (log) request.log[log.level]({ err: error, op: `${request.method} ${request.routeOptions.url ?? request.url}` }, log.msg);
  return reply
    .code(statusCode)
    .headers(headers)
    .send({ statusCode, error: REASONS[statusCode] ?? 'Error', message });
}
