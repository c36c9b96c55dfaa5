// Preloaded (NODE_OPTIONS=--import) into every API process the e2e harness starts: each
// answer the API sends, whoever asked (the suites' requests, workers, the command line,
// the client library), is appended to TEST_ANSWER_LOG as one JSON line, and the harness
// checks them all against the OpenAPI document when the suite ends (harness.ts).
// Appended at once (not buffered), so an API killed on purpose loses none.
import { appendFileSync } from 'node:fs';
import http from 'node:http';

const file = process.env.TEST_ANSWER_LOG;
/** A JSON body longer than this is recorded without it (its status is still checked). */
const MAX_BODY = 4 << 20;

if (file) {
  const { write, end } = http.ServerResponse.prototype;
  const chunks = new WeakMap();
  const json = (res) => String(res.getHeader('content-type') ?? '').startsWith('application/json');
  const keep = (res, chunk, encoding) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function' || !json(res)) return;
    const list = chunks.get(res) ?? [];
    list.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8'));
    chunks.set(res, list);
  };
  http.ServerResponse.prototype.write = function (chunk, encoding, ...rest) {
    keep(this, chunk, encoding);
    return write.call(this, chunk, encoding, ...rest);
  };
  http.ServerResponse.prototype.end = function (chunk, encoding, ...rest) {
    keep(this, chunk, encoding);
    const body = Buffer.concat(chunks.get(this) ?? []);
    chunks.delete(this);
    try {
      appendFileSync(
        file,
        `${JSON.stringify({
          method: this.req?.method,
          url: this.req?.url,
          status: this.statusCode,
          type: String(this.getHeader('content-type') ?? ''),
          body: json(this) && body.length <= MAX_BODY ? body.toString('utf8') : null,
        })}\n`,
      );
    } catch {
      // the log's directory is gone (the suite ended): nothing to record for
    }
    return end.call(this, chunk, encoding, ...rest);
  };
}
