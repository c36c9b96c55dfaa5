import type { INestApplication } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { completeDocument, operationId } from './openapi.js';
import { routeOf } from './http.js';
import { setPageHeaders } from './page-headers.js';

/**
 * The content policy of /docs and its files. Swagger UI's scripts come from the API itself
 * (the page has no inline script, and the bundle needs no eval); the page Nest builds carries
 * two inline <style> blocks and a style attribute, hence 'unsafe-inline' for styles only.
 * Its pictures are data: URIs in its stylesheet; "Try it out" calls this origin.
 */
export const DOCS_CONTENT_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/**
 * GET /docs: the OpenAPI document rendered for people, GET /docs/json for tools. The
 * request schemas come from the DTOs' types and class-validator rules (read at build
 * time by Nest's OpenAPI plugin, see scripts/build.mjs), so they cannot drift from what
 * the API validates. Open (no key needed), like /health and /metrics; served with the
 * headers of the UI's pages (common/page-headers.ts), as a page a browser shows.
 */
export function serveDocs(app: NestFastifyApplication, version: string): void {
  // Every answer under /docs: the page, its files, the document itself.
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRequest', (req, reply, done) => {
      // Decided on the route matched, as the router reads the path (`/%64ocs`, `//docs` are /docs too).
      const route = routeOf(req);
      if (route === '/docs' || route.startsWith('/docs/')) setPageHeaders(reply.raw, DOCS_CONTENT_POLICY);
      done();
    });
  const document = buildDocument(app, version);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/json', yamlDocumentUrl: 'docs/yaml' });
}

/**
 * The OpenAPI document of the API: what Nest reads from the controllers and DTOs, completed
 * (common/openapi.ts). Served at /docs/json and written to docs/openapi.json by
 * `node dist/apps/api/main.js openapi` (npm run openapi).
 */
export function buildDocument(app: INestApplication, version: string): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Tagflow')
    .setDescription(
      "Workflows of tagged tasks with dependencies, leases and retries. Every /v1 route takes an API key (`Authorization: Bearer tfk_...`, see POST /v1/keys) or, on a running task's own routes, its lease token. Errors are `{statusCode, error, code, message, details?, request_id}`; branch on `code`.",
    )
    .setVersion(version)
    .setLicense('Apache-2.0', 'https://www.apache.org/licenses/LICENSE-2.0')
    .addBearerAuth({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'opaque (tfk_... key, or a lease token)',
      description: "An API key, or a running task's lease token on the routes it may call.",
    })
    .addSecurityRequirements('bearer')
    .build();
  return completeDocument(SwaggerModule.createDocument(app, config, { operationIdFactory: operationId }));
}
