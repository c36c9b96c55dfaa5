#!/usr/bin/env node
// A callback receiver, as an orchestration engine (Heat, Mistral, your own) would run one:
// it checks each callback's signature before believing it, ignores a delivery it has
// already seen, and answers 2xx only once it has taken the result in (Tagflow retries
// anything else, with backoff, for hours).
//
//   TAGFLOW_CALLBACK_SECRET=s3cret PORT=9090 node examples/callback-receiver.mjs
//   curl -s -H "Authorization: Bearer $TAGFLOW_TOKEN" localhost:8080/v1/tasks -d '{"tags": ["local"],
//     "action": {"type": "shell", "command": "uname -a"},
//     "callback": {"url": "http://10.0.0.5:9090/tagflow", "secret": "s3cret"}}'
//
// (Tagflow does not call loopback or link-local addresses unless the API runs with
// CALLBACK_ALLOW_PRIVATE=1: set it to try this receiver on one machine.)
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

const secret = process.env.TAGFLOW_CALLBACK_SECRET;
if (!secret) {
  console.error('set TAGFLOW_CALLBACK_SECRET to the secret given in the callback');
  process.exit(2);
}
const seen = new Set(); // delivery ids already handled: a delivery may come twice

/** Whether `header` is `sha256=` and the hex HMAC-SHA256 of the raw body with the secret. */
function signedBy(header, body) {
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  const given = Buffer.from(String(header ?? ''));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const server = createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > 2 * 1024 * 1024) req.destroy(); // a task's JSON is well under this
    else chunks.push(c);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks); // verify the bytes as sent, before parsing them
    if (req.method !== 'POST' || !signedBy(req.headers['tagflow-signature'], body)) {
      console.log(`refused: bad or missing signature from ${req.socket.remoteAddress}`);
      return res.writeHead(401).end();
    }
    const delivery = req.headers['tagflow-delivery'];
    if (!seen.has(delivery)) {
      seen.add(delivery);
      const item = JSON.parse(body.toString('utf8'));
      // Here an engine would resume whatever waited for this task or workflow.
      console.log(`verified ${req.headers['tagflow-event']} ${item.id} ${item.state}${item.exit_code === null || item.exit_code === undefined ? '' : ` exit ${item.exit_code}`}`);
    }
    res.writeHead(204).end();
  });
});
const port = Number(process.env.PORT ?? 9090);
server.listen(port, process.env.HOST ?? '0.0.0.0', () => console.log(`listening on ${server.address().port}`));
