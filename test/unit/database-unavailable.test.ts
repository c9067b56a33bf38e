import { isDatabaseUnavailable } from '../../services/errors';

/** What the API answers 503 for (PostgreSQL away) and what stays a 500 (a bug). */
describe('isDatabaseUnavailable', () => {
  it.each([
    [{ code: 'ECONNREFUSED' }],
    [{ code: 'ECONNRESET' }],
    [{ code: '57P01', message: 'terminating connection due to administrator command' }],
    [{ code: '57P03', message: 'the database system is starting up' }],
    [{ code: '08006' }],
    [{ code: '53300' }],
    [new Error('Connection terminated unexpectedly')],
    [new Error('timeout exceeded when trying to connect')],
  ])('%j is an outage', (err) => expect(isDatabaseUnavailable(err)).toBe(true));

  it.each([
    [{ code: '23505', message: 'duplicate key value violates unique constraint' }],
    [{ code: '22P02' }],
    [{ code: '42P01', message: 'relation does not exist' }],
    [new TypeError('x is undefined')],
    [null],
    ['ECONNREFUSED'],
  ])('%j is not', (err) => expect(isDatabaseUnavailable(err)).toBe(false));
});
