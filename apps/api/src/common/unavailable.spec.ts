import { describe, expect, it } from '@jest/globals';
import { QueryRunnerAlreadyReleasedError } from 'typeorm';
import { unavailablePart } from './http-exception.filter.js';

describe('which part an error says is unavailable', () => {
  const withCode = (message: string, code: string, asDriverError = false) =>
    Object.assign(new Error(message), asDriverError ? { driverError: { code } } : { code });

  it('names the database for a server away, restarting, full, or a statement given up on', () => {
    for (const code of ['08006', '08001', '57P01', '57P03', '53300', '57014', '55P03', '40001', '40P01']) {
      expect({ code, part: unavailablePart(withCode('x', code, true)) }).toEqual({ code, part: 'database' });
    }
    expect(unavailablePart(withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'))).toBe('database');
    expect(unavailablePart(withCode('database is locked', 'SQLITE_BUSY'))).toBe('database');
    expect(unavailablePart(new Error('Connection terminated unexpectedly'))).toBe('database');
    expect(unavailablePart(new Error('timeout exceeded when trying to connect'))).toBe('database');
    // node-pg's own words for a statement past query_timeout and a client whose connection broke.
    expect(unavailablePart(new Error('Query read timeout'))).toBe('database');
    expect(unavailablePart(new Error('Client has encountered a connection error and is not queryable'))).toBe(
      'database',
    );
    // TypeORM's, for the next statement of a transaction whose connection broke (seen in CI as a
    // 500 to a report while PostgreSQL restarted).
    expect(unavailablePart(new QueryRunnerAlreadyReleasedError())).toBe('database');
  });

  it('names the database for a statement prepared before a migration changed its table, not for another 0A000', () => {
    const stale = Object.assign(withCode('cached plan must not change result type', '0A000', true), {
      staleStatement: true, // as persistence's query marks it
    });
    expect(unavailablePart(stale)).toBe('database');
    expect(unavailablePart(withCode('FOR UPDATE is not allowed with aggregate functions', '0A000', true))).toBeNull();
  });

  it('names Redis for a closed connection', () => {
    expect(unavailablePart(new Error('Connection is closed.'))).toBe('Redis');
    expect(
      unavailablePart(
        Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' }),
      ),
    ).toBe('Redis');
  });

  it('names Redis for a Cluster or Sentinel that cannot be reached, and for its answers during a failover', () => {
    const named = (name: string, message: string) => Object.assign(new Error(message), { name });
    for (const message of [
      'Too many Cluster redirections. Last error: Error: Connection is closed.',
      'Cluster is disconnected.',
      'None of startup nodes is available',
      'All sentinels are unreachable. Retrying from scratch after 10ms.',
    ]) {
      expect({ message, part: unavailablePart(new Error(message)) }).toEqual({ message, part: 'Redis' });
    }
    expect(unavailablePart(named('ClusterAllFailedError', 'Failed to refresh slots cache.'))).toBe('Redis');
    for (const message of [
      "READONLY You can't write against a read only replica.",
      'CLUSTERDOWN The cluster is down',
      'TRYAGAIN Multiple keys request during rehashing of slot',
      'LOADING Redis is loading the dataset in memory',
      'MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to no',
    ]) {
      expect({ message, part: unavailablePart(named('ReplyError', message)) }).toEqual({ message, part: 'Redis' });
    }
  });

  it('leaves every other error a 500', () => {
    expect(unavailablePart(withCode('duplicate key value violates unique constraint', '23505', true))).toBeNull();
    expect(unavailablePart(new TypeError('x is undefined'))).toBeNull();
    expect(unavailablePart('a string')).toBeNull();
    // A script's own error or a wrong type is a bug to see, not an outage.
    expect(
      unavailablePart(Object.assign(new Error('WRONGTYPE Operation against a key'), { name: 'ReplyError' })),
    ).toBeNull();
    expect(unavailablePart(Object.assign(new Error('READONLY x'), { name: 'TypeError' }))).toBeNull();
  });

  it('never asks to send again a request whose transaction committed before its error', () => {
    const cause = new Error('Connection terminated unexpectedly');
    expect(unavailablePart(cause)).toBe('database');
    const committed = Object.assign(new Error(`the transaction committed, but then: ${cause.message}`), {
      committed: true,
      cause,
    });
    expect(unavailablePart(committed)).toBeNull();
  });
});
