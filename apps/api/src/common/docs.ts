import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';

/**
 * GET /docs: the OpenAPI document rendered for people, GET /docs/json for tools. The
 * request schemas come from the DTOs' types and class-validator rules (read at build
 * time by Nest's OpenAPI plugin, see scripts/build.mjs), so they cannot drift from what
 * the API validates. Open (no key needed), like /health and /metrics.
 */
export function serveDocs(app: INestApplication, version: string): void {
  const config = new DocumentBuilder()
    .setTitle('Tagflow')
    .setDescription('Workflows of tagged tasks with dependencies, leases and retries. Every /v1 route takes an API key: `Authorization: Bearer tfk_...` (see POST /v1/keys). Errors are `{statusCode, error, message, details?, request_id}`.')
    .setVersion(version)
    .addBearerAuth()
    .addSecurityRequirements('bearer')
    .build();
  const document = SwaggerModule.createDocument(app, config);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/json', yamlDocumentUrl: 'docs/yaml' });
}
