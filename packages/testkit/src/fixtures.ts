import { randomUUID } from 'node:crypto';
import { stringifyJson, type ProcessPaymentRequest } from '@foodies/domain';

let nextOrder = BigInt(Date.now()) * 1000n;

/** A fresh order id per call, unique across test files run in parallel. */
export function newOrderId(): bigint {
  return nextOrder++ + BigInt(Math.floor(Math.random() * 1000)) * 1_000_000_000n;
}

/** A realistic OrderStockConfirmedEvent body as the Ordering service sends it. */
export function stockConfirmedEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    eventId: randomUUID(),
    orderId: newOrderId(),
    buyerId: 'user-uuid-123',
    totalAmount: '49.99',
    currency: 'USD',
    paymentMethod: {
      type: 'CREDIT_CARD',
      cardLastFour: '4242',
      cardBrand: 'VISA',
      cardHolderName: 'John Doe',
      expirationMonth: 12,
      expirationYear: 2030,
    },
    occurredAt: '2024-01-15T10:30:00Z',
    ...overrides,
  };
}

export function eventBody(event: Record<string, unknown>): Buffer {
  return Buffer.from(stringifyJson(event), 'utf8');
}

/** A valid payment request (what the consumer hands PaymentService) for a fresh order. */
export function paymentRequest(overrides: Partial<ProcessPaymentRequest> = {}, lastFour = '4242'): ProcessPaymentRequest {
  return {
    eventId: `evt-${randomUUID()}`,
    orderId: newOrderId(),
    buyerId: 'user-123',
    amount: '49.99',
    currency: 'USD',
    paymentMethod: {
      type: 'CREDIT_CARD',
      cardLastFour: lastFour,
      cardBrand: 'VISA',
      cardHolderName: 'John Doe',
      expirationMonth: 12,
      expirationYear: 2030,
    },
    ...overrides,
  };
}
