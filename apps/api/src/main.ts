import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from './common/errors.js';
import { dropInvalidContentType, requestIdOf } from './common/http.js';
import { TAGFLOW_VERSION } from '@tagflow/client';
import { createDataSource, Database } from '@tagflow/persistence';
import { AppModule } from './app.module.js';
import { loadConfig, type AppConfig } from './config/app-config.js';
import { KeysService } from './auth/keys.service.js';
import { keysCommand } from './auth/keys-command.js';
import { HttpExceptionFilter } from './common/http-exception.filter.js';
import { JsonLogger } from './common/logger.js';
import { createValidationPipe } from './common/validation.js';
import { buildDocument, serveDocs } from './common/docs.js';
import { uiBuilt, uiMissing } from './common/ui.js';
import { MetricsService } from './metrics/metrics.service.js';

/**
 * A promise rejected with nobody listening (a Redis client re-subscribing after a failover
 * and refused, say) is logged, not fatal: the API goes on, and what it affects is retried
 * or reported where it matters (/health, the request that needed it).
 */
function keepRunningOnStrayRejections(logger: JsonLogger): void {
  process.on('unhandledRejection', (reason: unknown) => {
    logger.event('error', 'main', 'a background operation failed with nobody waiting for it', {
      error: reason instanceof Error ? reason.message : String(reason),
    });
  });
}

async function bootstrap(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (e) {
    process.stderr.write(`tagflow-api: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  const logger = new JsonLogger(config.LOG_LEVEL);
  keepRunningOnStrayRejections(logger);
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, logger),
    new FastifyAdapter(adapterOptions(config)),
    { logger, bodyParser: false, abortOnError: false },
  );
  const server = app.getHttpAdapter().getInstance();
  // No body parser: a body is read by the guard once its caller is known (auth.guard.ts,
  // common/body.ts). Every content type is let through unread to it.
  server.removeAllContentTypeParsers();
  server.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
  // Once stopping, new requests get 503 and their connection closed, so clients back off
  // and keep-alive connections let the server drain instead of feeding it more work.
  let stopping = false;
  server.addHook('onRequest', (req, reply, done) => {
    // No answer is ever sniffed into another type (a task's log served as text stays text).
    reply.raw.setHeader('x-content-type-options', 'nosniff');
    dropInvalidContentType(req);
    if (!stopping) return done();
    void reply
      .header('connection', 'close')
      .status(503)
      .send(errorBody(503, { code: 'SHUTTING_DOWN', message: 'the API is shutting down; retry shortly' }));
  });
  // Requests by route and status: which calls workers and clients make, and how they end.
  const requests = app
    .get(MetricsService)
    .counter('tagflow_http_requests_total', 'HTTP requests answered, by method, route and status.');
  server.addHook('onResponse', (req, reply, done) => {
    requests({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
    done();
  });
  app.useGlobalPipes(createValidationPipe());
  app.useGlobalFilters(new HttpExceptionFilter(logger));
  serveDocs(app, TAGFLOW_VERSION);
  if (!uiBuilt(config.UI_DIR)) {
    logger.event('warn', 'main', 'the web UI is not built: /ui answers 404', { ui_dir: config.UI_DIR });
    server.addHook('onRequest', uiMissing());
  }

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.event('info', 'main', 'shutting down', { signal });
    const force = setTimeout(() => {
      logger.event('warn', 'main', 'shutdown grace period over; exiting');
      process.exit(1);
    }, config.SHUTDOWN_GRACE_MS);
    force.unref();
    app.close().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.event('error', 'main', 'shutdown failed', { error: String(e) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  await app.init();
  // Secure by default: with no key, the API is open, so it may only listen on loopback.
  if (app.get(KeysService).isOpen) {
    if (!isLoopback(config.HOST)) {
      process.stderr.write(
        `tagflow-api: refusing to listen on ${config.HOST} with no API key: anyone reaching it could run commands on your workers.\n` +
          '  Create the first admin key: set TAGFLOW_ADMIN_TOKEN=$(node dist/apps/api/main.js keys token) (keep it secret),\n' +
          '  or run: node dist/apps/api/main.js keys create --name admin --role admin\n',
      );
      await app.close();
      process.exit(2);
    }
    logger.event(
      'warn',
      'main',
      'no API key exists: the API is open to anyone on this machine until one is created (POST /v1/keys, or TAGFLOW_ADMIN_TOKEN)',
    );
  }
  // A client that asks before sending its body (Expect: 100-continue) is told to go on by the
  // guard once its caller is admitted (auth.guard.ts), not by Node before anyone looked.
  const http = app.getHttpServer();
  http.on('checkContinue', (req, res) => http.emit('request', req, res));
  await app.listen(config.PORT, config.HOST);
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.event('info', 'main', 'tagflow api listening', {
    host: config.HOST,
    port,
    database: config.DATABASE_URL.split(':')[0],
  });
}

/**
 * The HTTP server's options. A route is matched whatever its spelling (`/V1/...`,
 * `//v1/...`, a trailing slash), and the access rules are decided on the route matched;
 * a path parameter may be as long as a data key.
 */
function adapterOptions(config: AppConfig) {
  return {
    routerOptions: {
      caseSensitive: false,
      ignoreTrailingSlash: true,
      ignoreDuplicateSlashes: true,
      maxParamLength: 1024,
    },
    trustProxy: config.TRUST_PROXY ? trustProxy(config.TRUST_PROXY) : false,
    // A request must be received in full within 5 minutes (Node's default; Fastify's is none).
    // It bounds only receiving it: long polls and followed streams answer for longer. The guard
    // bounds a body's arrival once its caller is known (30 s).
    requestTimeout: 300_000,
    // Longer than the 60 s idle timeout of common load balancers, so none reuses a closed socket.
    keepAliveTimeout: 72_000,
    // Requests while stopping are answered by the API's own hook (503 SHUTTING_DOWN, above).
    return503OnClosing: false,
    // What the router refuses before any hook or handler (a malformed URL: 400), in the API's
    // error body, its body unread and its connection closed.
    frameworkErrors: (error: Error & { statusCode?: number }, req: FastifyRequest, reply: FastifyReply) => {
      const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      reply.raw.setHeader('x-content-type-options', 'nosniff');
      if (!req.raw.complete) reply.raw.setHeader('connection', 'close');
      void reply.status(status).send(errorBody(status, { message: error.message }, requestIdOf(req)));
    },
  };
}

/** TRUST_PROXY: a hop count (that many proxies in front are trusted), or addresses and subnets. */
function trustProxy(value: string): string[] | ((address: string, hop: number) => boolean) {
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address, hop) => hop < hops;
  }
  return value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The process's subcommands, each ending the process with its exit code (an error: 1, named). */
const SUBCOMMANDS: Record<string, (args: string[]) => Promise<number | void>> = {
  migrate: migrateCommand,
  openapi: openapiCommand,
  keys: keysCommand,
};

const subcommand = Object.hasOwn(SUBCOMMANDS, process.argv[2] ?? '') ? SUBCOMMANDS[process.argv[2]] : undefined;
if (subcommand) {
  subcommand(process.argv.slice(3)).then(
    (code) => process.exit(code ?? 0),
    (e: unknown) => {
      process.stderr.write(`tagflow-api ${process.argv[2]}: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
} else {
  void run();
}

/** `node dist/apps/api/main.js migrate`: brings the database of DATABASE_URL up to date, then exits (the API does the same at start). */
async function migrateCommand(): Promise<void> {
  const db = new Database(createDataSource(process.env.DATABASE_URL || 'sqlite:./data/tagflow.db'));
  await db.initialize();
  await db.close();
}

/** `node dist/apps/api/main.js openapi`: prints the OpenAPI document (docs/openapi.json), touching no database or Redis. */
async function openapiCommand(): Promise<void> {
  const config = loadConfig();
  // Preview: the controllers and their metadata, no provider made (so nothing connects).
  const app = await NestFactory.create(AppModule.forRoot(config, new JsonLogger('error')), new FastifyAdapter(), {
    preview: true,
    logger: false,
    bodyParser: false,
  });
  process.stdout.write(`${JSON.stringify(buildDocument(app, TAGFLOW_VERSION), null, 2)}\n`);
}

function run(): Promise<void> {
  return bootstrap().catch((e: unknown) => {
    process.stderr.write(`tagflow-api: failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
