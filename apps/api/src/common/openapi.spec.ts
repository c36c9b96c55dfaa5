import { describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import { readFile } from 'node:fs/promises';
import { completeDocument, operationId } from './openapi.js';
import { REQUEST_CLASSES, tightenRequestSchemas } from './openapi-requests.js';

const doc = (paths: Record<string, unknown>): OpenAPIObject =>
  ({ openapi: '3.0.0', info: { title: 't', version: '1' }, paths, components: {} }) as unknown as OpenAPIObject;

describe('the OpenAPI document, completed', () => {
  it('gives every operation the errors it can answer, by what it takes and who may call it', () => {
    const out = completeDocument(
      doc({
        '/health': { get: { operationId: 'health', 'x-access': 'public', responses: { '200': {} } } },
        '/v1/workflows': {
          post: { operationId: 'createWorkflow', requestBody: {}, responses: { '201': {} } },
          get: { operationId: 'listWorkflows', parameters: [{ name: 'limit', in: 'query' }], responses: { '200': {} } },
        },
        '/v1/tasks/{id}/cancel': {
          post: { operationId: 'cancelTask', parameters: [{ name: 'id', in: 'path' }], responses: { '200': {} } },
        },
      }),
    );
    const statuses = (path: string, method: string) =>
      Object.keys((out.paths[path] as Record<string, { responses: object }>)[method].responses);
    expect(statuses('/health', 'get')).toEqual(['200', '503']);
    expect(out.paths['/health'].get!.security).toEqual([]);
    expect(statuses('/v1/workflows', 'post')).toEqual([
      '201',
      '400',
      '401',
      '403',
      '408',
      '413',
      '415',
      '422',
      '429',
      '503',
    ]);
    expect(statuses('/v1/workflows', 'get')).toEqual(['200', '400', '401', '403', '429', '503']);
    expect(statuses('/v1/tasks/{id}/cancel', 'post')).toEqual(['200', '400', '401', '403', '404', '409', '429', '503']);
    // Its success answer is the Workflow schema.
    expect(out.paths['/v1/workflows'].post!.responses['201']).toMatchObject({
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Workflow' } } },
    });
    expect(out.paths['/v1/workflows'].post!.responses['422']).toMatchObject({
      content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } },
    });
    expect(out.components!.schemas!.ErrorBody).toMatchObject({ required: ['statusCode', 'code', 'message'] });
    expect(out.servers).toEqual([{ url: '/', description: expect.any(String) }]);
  });

  it('keeps an error answer a route declares itself', () => {
    const own = { description: 'unhealthy', content: {} };
    const out = completeDocument(doc({ '/health': { get: { 'x-access': 'public', responses: { '503': own } } } }));
    expect(out.paths['/health'].get!.responses['503']).toBe(own);
  });

  it('makes the first sentence of a doc comment the summary and the whole comment the description', () => {
    const out = completeDocument(
      doc({
        '/a': { get: { summary: 'Reports success.\nA stale token gets 409; e.g. twice.', responses: {} } },
        '/b': { get: { summary: 'One worker', responses: {} } },
      }),
    );
    expect(out.paths['/a'].get).toMatchObject({
      summary: 'Reports success',
      description: 'Reports success. A stale token gets 409; e.g. twice.',
    });
    expect(out.paths['/b'].get!.summary).toBe('One worker');
    expect(out.paths['/b'].get!.description).toBeUndefined();
  });

  it("names operations readably, and keeps Nest's name for one it does not know", () => {
    expect(operationId('WorkflowsController', 'create')).toBe('createWorkflow');
    expect(operationId('NewController', 'thing')).toBe('NewController_thing');
  });
});

describe('the request schemas', () => {
  it('are made strict for every class a body is validated as', async () => {
    const kept = JSON.parse(await readFile('docs/openapi.json', 'utf8')) as OpenAPIObject;
    const dtos = Object.keys(kept.components!.schemas!).filter((name) => name.endsWith('Dto'));
    expect(dtos.filter((name) => !REQUEST_CLASSES.some((cls) => cls.name === name))).toEqual([]);
    for (const name of dtos)
      expect([name, kept.components!.schemas![name]]).toMatchObject([name, { additionalProperties: false }]);
  });

  it('say what class-validator checks: integers, patterns, sizes, and null for an optional field', () => {
    const schemas: Record<string, any> = {
      RetryDto: { type: 'object', properties: { count: { type: 'number' }, delay_s: { type: 'number' } } },
      CreateWorkflowDto: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          tags: { type: 'array', items: { type: 'string' } },
          callback: { $ref: '#/components/schemas/CallbackDto' },
        },
      },
    };
    tightenRequestSchemas(schemas);
    expect(schemas.RetryDto).toMatchObject({
      additionalProperties: false,
      properties: { count: { type: 'integer', nullable: true }, delay_s: { type: 'number', nullable: true } },
    });
    expect(schemas.CreateWorkflowDto.properties).toEqual({
      name: { type: 'string', maxLength: 128, pattern: '^[A-Za-z0-9_.-]+$' },
      tags: {
        type: 'array',
        maxItems: 32,
        nullable: true,
        items: { type: 'string', maxLength: 64, pattern: '^[A-Za-z0-9_.:/=-]+$' },
      },
      callback: { type: 'object', allOf: [{ $ref: '#/components/schemas/CallbackDto' }], nullable: true },
    });
  });
});
