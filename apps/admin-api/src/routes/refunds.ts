import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { findPaymentByOrderId, listRefunds, type Db } from '@foodies/db';
import { storableText } from '@foodies/domain';
import { BadRequest, NotFound } from '../errors.js';
import type { Refunder } from '../refunds/refunder.js';
import { RefundRefused } from '../refunds/rules.js';
import { ErrorSchema, IdempotencyKeyHeader, IdParam, RefundBodySchema, RefundSchema, toRefundDto } from '../schemas.js';
import { commonErrors, parseId } from './common.js';

const orderParams = Type.Object({ orderId: IdParam });

/**
 * Refunds of an order's payment. POST needs the refund role (route config `role: 'refund'`,
 * checked in app.ts with authentication); GET the admin role like every other query.
 */
export const refundRoutes: FastifyPluginAsyncTypebox<{ db: Db; refunder: Refunder }> = async (app, { db, refunder }) => {
  app.post(
    '/payments/:orderId/refunds',
    {
      config: { role: 'refund' },
      // Before validation, which would coerce a JSON number to a string: money is never a float on the way in.
      preValidation: async (request) => {
        const amount = (request.body as { amount?: unknown } | null)?.amount;
        if (typeof amount === 'number') throw new BadRequest('body/amount must be a decimal string like "5.50", not a JSON number');
      },
      schema: {
        summary: "Refunds an order's payment, in part or in full",
        description:
          'Idempotent under the Idempotency-Key header (Stripe semantics): the same key with the same body answers as the first ' +
          'request did (the refund as it is now), with another body 409. 201: the refund is final (SUCCEEDED, or FAILED when the ' +
          'gateway declined); 202: the gateway outcome is not known yet, the refund stays PENDING and is finished in the background.',
        security: [{ bearer: [] }],
        params: orderParams,
        headers: Type.Object({ 'idempotency-key': IdempotencyKeyHeader }),
        body: RefundBodySchema,
        response: {
          201: Type.Ref(RefundSchema),
          202: Type.Ref(RefundSchema),
          404: Type.Ref(ErrorSchema),
          409: Type.Ref(ErrorSchema),
          422: Type.Ref(ErrorSchema),
          ...commonErrors,
        },
      },
    },
    async (request, reply) => {
      const { amount, reason } = request.body;
      if (reason !== undefined && !storableText(reason)) throw new BadRequest('body reason contains a NUL character or invalid UTF-16');
      const answer = await refunder.request({
        orderId: parseId(request.params.orderId, 'orderId'),
        amount,
        reason,
        idempotencyKey: request.headers['idempotency-key'],
        requestedBy: request.caller.subject,
      });
      if (answer.kind === 'refused') throw new RefundRefused(answer.statusCode, answer.message);
      return reply.code(answer.refund.status === 'PENDING' ? 202 : 201).send(toRefundDto(answer.refund));
    },
  );

  app.get(
    '/payments/:orderId/refunds',
    {
      schema: {
        summary: "An order's refunds, oldest first",
        security: [{ bearer: [] }],
        params: orderParams,
        response: { 200: Type.Object({ items: Type.Array(Type.Ref(RefundSchema)) }), 404: Type.Ref(ErrorSchema), ...commonErrors },
      },
    },
    async (request) => {
      const orderId = parseId(request.params.orderId, 'orderId');
      const refunds = await listRefunds(db, orderId);
      if (refunds.length === 0 && !(await findPaymentByOrderId(db, orderId))) throw new NotFound(`no payment for order ${orderId}`);
      return { items: refunds.map(toRefundDto) };
    },
  );
};
