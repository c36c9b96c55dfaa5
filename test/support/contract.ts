import { appendFileSync, readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import formats from 'ajv-formats';

/**
 * Every answer the end-to-end suites receive, checked against the OpenAPI document kept in
 * docs/openapi.json (which a test keeps equal to what the API serves): its status must be
 * one the operation documents, and a JSON body must match the schema documented for that
 * status. A mismatch fails the request naming the route, the status and where in the body.
 */

interface Operation {
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

const document = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
};

/** OpenAPI 3.0's `nullable` as JSON Schema: the type may also be null. */
function jsonSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(jsonSchema);
  if (!s || typeof s !== 'object') return s;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'nullable') continue;
    out[k] = k === '$ref' ? String(v).replace('#/components/schemas/', 'doc#/components/schemas/') : jsonSchema(v);
  }
  const o = s as Record<string, unknown>;
  if (o.nullable !== true) return out;
  if (typeof o.type !== 'string' || o.allOf) return { anyOf: [{ type: 'null' }, out] };
  out.type = [o.type, 'null'];
  if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
  return out;
}

const ajv = new Ajv({ allErrors: false, strict: false });
// ajv-formats is CommonJS: its function is the module's default export, or the module itself.
const addFormats = ((formats as unknown as { default?: unknown }).default ?? formats) as (a: Ajv) => Ajv;
addFormats(ajv);
ajv.addSchema({ $id: 'doc', components: { schemas: jsonSchema(document.components.schemas) } });

// A literal path wins over a template it also matches (`/v1/tasks/poll` before `/v1/tasks/{id}`).
const routes = Object.entries(document.paths)
  .map(([template, ops]) => ({
    template,
    match: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    params: (template.match(/\{/g) ?? []).length,
    ops,
  }))
  .sort((a, b) => a.params - b.params);
const validators = new Map<unknown, ValidateFunction>();

/** Throws when an answer breaks the document (CONTRACT_LOG=FILE: appends to FILE instead, to see them all at once). */
export function checkAnswer(method: string, url: string, status: number, body: unknown, contentType: string): void {
  const problem = answerProblem(method, url, status, body, contentType);
  if (problem === null) return;
  if (!process.env.CONTRACT_LOG) throw new Error(problem);
  appendFileSync(process.env.CONTRACT_LOG, `${problem}\n`);
}

/**
 * The answers an API process recorded (test/support/answer-recorder.mjs: one JSON line each,
 * whoever asked), checked: the problems found, each once with how often it was seen.
 */
export function recordedAnswerProblems(lines: readonly string[]): string[] {
  const seen = new Map<string, number>();
  for (const line of lines) {
    if (!line) continue;
    const a = JSON.parse(line) as { method: string; url: string; status: number; type: string; body: string | null };
    let body: unknown = null;
    if (a.body !== null && a.body !== '') {
      try {
        body = JSON.parse(a.body);
      } catch {
        body = a.body; // not JSON though it says so: the schema check names it
      }
    } else if (a.body === null && a.type.startsWith('application/json')) continue; // too large to keep
    const problem = answerProblem(a.method, a.url, a.status, body, a.type);
    if (problem !== null) seen.set(problem, (seen.get(problem) ?? 0) + 1);
  }
  return [...seen].map(([problem, n]) => (n > 1 ? `${problem} (${n} times)` : problem));
}

function undecodable(path: string): boolean {
  try {
    decodeURIComponent(path);
    return false;
  } catch {
    return true;
  }
}

/** The operation of METHOD PATH the document describes, with its path template. */
function operationOf(method: string, path: string): { template: string; op: Operation } | undefined {
  const route = routes.find((r) => r.match.test(path) && r.ops[method.toLowerCase()]);
  return route && { template: route.template, op: route.ops[method.toLowerCase()] };
}

/** A schema of the document, compiled once. */
function validatorOf(schema: unknown): ValidateFunction {
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv.compile(jsonSchema(schema) as object);
    validators.set(schema, validate);
  }
  return validate;
}

/**
 * How an answer breaks the document, or null when it keeps to it. Outside /v1 (the UI,
 * /docs) only the paths the document describes are checked.
 */
export function answerProblem(
  method: string,
  url: string,
  status: number,
  body: unknown,
  contentType: string,
): string | null {
  // The API routes `/v1/x/` and `/v1//x` as `/v1/x`: the same operation.
  const path = url
    .split('?')[0]
    .replace(/\/{2,}/g, '/')
    .replace(/(.)\/+$/, '$1');
  const found = operationOf(method, path);
  if (!found) {
    // Outside /v1 (the UI, /docs) is not the API's contract; a /v1 answer other than 404 is,
    // but for the router's 400 to a path that cannot be decoded (no route has such a path).
    if (path.startsWith('/v1/') && status !== 404 && !(status === 400 && undecodable(path)))
      return `${method} ${path} answered ${status}, a route the document does not describe`;
    return null;
  }
  const where = `${method} ${found.template} answered ${status}`;
  const documented = found.op.responses[String(status)];
  if (!documented) return `${where}, a status its operation does not document (docs/openapi.json)`;
  const schema = documented.content?.['application/json']?.schema;
  if (!schema) return null;
  if (!contentType.startsWith('application/json')) {
    // Another type it documents (a stream, text) passes.
    if (Object.keys(documented.content ?? {}).some((type) => contentType.startsWith(type.split(';')[0]))) return null;
    return `${where} as ${contentType || 'no content type'}, not a type its document lists`;
  }
  const validate = validatorOf(schema);
  if (validate(body)) return null;
  const e = validate.errors?.[0];
  return `${where} with a body its document does not allow: at ${e?.instancePath || '(root)'} ${e?.message ?? ''} ${JSON.stringify(e?.params ?? {})}`;
}

/**
 * What the document says of a request body for METHOD PATH: null when its schema allows
 * the body, else where and why not (the route must take a JSON body).
 */
export function requestProblem(method: string, path: string, body: unknown): string | null {
  const schema = operationOf(method, path)?.op.requestBody?.content['application/json']?.schema;
  if (!schema) throw new Error(`${method} ${path}: the document describes no JSON body for it`);
  const validate = validatorOf(schema);
  if (validate(body)) return null;
  const e = validate.errors?.[0];
  return `at ${e?.instancePath || '(root)'} ${e?.message ?? ''}`;
}
