import t from 'tap';
import { checkAmount, currencyMinorUnits, formatStoredAmount } from '@foodies/domain';

t.test('amounts are checked against the currency minor units and returned canonical', async (t) => {
  t.same(checkAmount('49.99', 'USD'), { ok: true, amount: '49.99' });
  t.same(checkAmount('49.9', 'USD'), { ok: true, amount: '49.90' });
  t.same(checkAmount('100', 'USD'), { ok: true, amount: '100.00' });
  t.same(checkAmount('100.00', 'JPY'), { ok: true, amount: '100' }, '"100.00" JPY is 100 yen');
  t.same(checkAmount('1.234', 'BHD'), { ok: true, amount: '1.234' }, 'three-decimal currency kept exactly');
  t.same(checkAmount('007.50', 'EUR'), { ok: true, amount: '7.50' });
  t.same(checkAmount('999999999999999.99', 'USD'), { ok: true, amount: '999999999999999.99' });
});

t.test('amounts that cannot be charged are rejected with a precise reason', async (t) => {
  const reasons: Record<string, [string, string]> = {
    zero: ['0', 'USD'],
    zeroFraction: ['0.00', 'USD'],
    negative: ['-1.00', 'USD'],
    exponent: ['1e3', 'USD'],
    tooPrecise: ['12.345', 'USD'],
    yenFraction: ['100.50', 'JPY'],
    unknownCurrency: ['10.00', 'ZZZ'],
    metal: ['10', 'XAU'],
    lowercase: ['10.00', 'usd'],
    tooLarge: ['1000000000000000', 'USD'],
    blank: ['', 'USD'],
    spaces: [' 1.00', 'USD'],
  };
  const expected: Record<string, RegExp> = {
    zero: /must be greater than zero/,
    zeroFraction: /must be greater than zero/,
    negative: /must be greater than zero/,
    exponent: /not a plain decimal/,
    tooPrecise: /more decimal places than USD allows \(2\)/,
    yenFraction: /more decimal places than JPY allows \(0\)/,
    unknownCurrency: /unsupported currency 'ZZZ'/,
    metal: /unsupported currency 'XAU'/,
    lowercase: /unsupported currency 'usd'/,
    tooLarge: /exceeds the largest supported amount/,
    blank: /not a plain decimal/,
    spaces: /not a plain decimal/,
  };
  for (const [name, [amount, currency]] of Object.entries(reasons)) {
    const result = checkAmount(amount, currency);
    t.equal(result.ok, false, `${name} rejected`);
    if (!result.ok) t.match(result.reason, expected[name]!, name);
  }
});

t.test('minor units come from ISO 4217 and stored NUMERIC values are formatted with them', async (t) => {
  t.equal(currencyMinorUnits('USD'), 2);
  t.equal(currencyMinorUnits('JPY'), 0);
  t.equal(currencyMinorUnits('KWD'), 3);
  t.equal(currencyMinorUnits('XXX'), undefined);
  t.equal(formatStoredAmount('49.9900', 'USD'), '49.99');
  t.equal(formatStoredAmount('100.0000', 'JPY'), '100');
  t.equal(formatStoredAmount('1.2340', 'BHD'), '1.234');
});
