import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { findPaymentById, findPaymentByOrderId, listPayments, type Db } from '@foodies/db';
import { NotFound } from '../errors.js';
import { ErrorSchema, IdParam, ListQuerySchema, PaymentPageSchema, PaymentRecordSchema, toPaymentDto } from '../schemas.js';
import { commonErrors as errors, parseId } from './common.js';

/**
 * Admin payment queries; params and query are typed from their schemas. Registered inside the
 * admin scope (app.ts), which has already rate-limited and authenticated the request.
 */
export const paymentRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  app.get(
    '/payments/:orderId',
    {
      schema: {
        summary: 'The payment of an order',
        security: [{ bearer: [] }],
        params: Type.Object({ orderId: IdParam }),
        response: { 200: Type.Ref(PaymentRecordSchema), 404: Type.Ref(ErrorSchema), ...errors },
      },
    },
    async (request) => {
      const payment = await findPaymentByOrderId(db, parseId(request.params.orderId, 'orderId'));
      if (!payment) throw new NotFound(`no payment for order ${request.params.orderId}`);
      return toPaymentDto(payment);
    },
  );

  app.get(
    '/payments/by-id/:paymentId',
    {
      schema: {
        summary: 'A payment by its id',
        security: [{ bearer: [] }],
        params: Type.Object({ paymentId: IdParam }),
        response: { 200: Type.Ref(PaymentRecordSchema), 404: Type.Ref(ErrorSchema), ...errors },
      },
    },
    async (request) => {
      const payment = await findPaymentById(db, parseId(request.params.paymentId, 'paymentId'));
      if (!payment) throw new NotFound(`no payment with id ${request.params.paymentId}`);
      return toPaymentDto(payment);
    },
  );

  app.get(
    '/payments',
    {
      schema: {
        summary: 'Payments, newest first, by buyer and/or status, one page at a time',
        security: [{ bearer: [] }],
        querystring: ListQuerySchema,
        response: { 200: PaymentPageSchema, ...errors },
      },
    },
    async (request) => {
      const { buyerId, status, limit, offset } = request.query;
      const rows = await listPayments(db, { buyerId, status, limit: limit + 1, offset });
      return { items: rows.slice(0, limit).map(toPaymentDto), limit, offset, nextOffset: rows.length > limit ? offset + limit : null };
    },
  );
};
