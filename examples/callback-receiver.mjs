#!/usr/bin/env node
// A callback receiver, as an orchestration engine (Heat, Mistral, your own) would run one:
// it checks each callback's signature and its time before believing it, acts on a delivery
// once, and answers 2xx only once it has taken the result in (Tagflow retries anything else,
// with backoff, for hours).
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
/** A signature more than this far from our clock (either way) is refused: a copy of an old delivery cannot be replayed. */
const TOLERANCE_S = 5 * 60;
const seen = new Set(); // delivery ids already acted on: Tagflow may send one again (a new try, signed anew)
const recent = new Map(); // signatures taken, with their t, while they are young enough to be accepted again

/**
 * Why `header` does not vouch for the raw body now, or null. It is `t=<unix seconds>,v1=<hex
 * HMAC-SHA256 of "<t>.<body>">`; keys other than t and v1 are skipped, and any v1 may match
 * (more than one could come while a secret changes).
 */
function refusal(header, body, nowS) {
  const fields = String(header ?? '')
    .split(',')
    .map((kv) => kv.trim().split('='));
  const t = fields.find(([k]) => k === 't')?.[1];
  if (!/^\d{1,12}$/.test(t ?? '')) return 'bad or missing signature';
  const expected = createHmac('sha256', secret).update(`${t}.`).update(body).digest();
  const matches = fields.some(
    ([k, v]) => k === 'v1' && /^[0-9a-f]{64}$/.test(v) && timingSafeEqual(Buffer.from(v, 'hex'), expected),
  );
  if (!matches) return 'bad or missing signature';
  if (Math.abs(nowS - Number(t)) > TOLERANCE_S)
    return `signed more than 5 minutes from now (t=${t}: a replayed copy, or a clock that is off)`;
  return null;
}

/** Whether this delivery was acted on already: by its id, or by its signature (a copy sent again under another id: the id is not signed). */
function handled(delivery, signature, nowS) {
  for (const [s, t] of recent) if (Math.abs(nowS - t) > TOLERANCE_S) recent.delete(s); // older ones are refused by their time anyway
  const again = seen.has(delivery) || recent.has(signature);
  seen.add(delivery);
  recent.set(signature, Number(/(?:^|,)t=(\d+)/.exec(signature)[1]));
  return again;
}

const server = createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > 2 * 1024 * 1024)
      req.destroy(); // a task's JSON is well under this
    else chunks.push(c);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks); // verify the bytes as sent, before parsing them
    const nowS = Math.floor(Date.now() / 1000);
    const signature = String(req.headers['tagflow-signature'] ?? '');
    const why = req.method === 'POST' ? refusal(signature, body, nowS) : 'not a POST';
    if (why) {
      console.log(`refused: ${why} from ${req.socket.remoteAddress}`);
      return res.writeHead(401).end();
    }
    if (!handled(String(req.headers['tagflow-delivery']), signature, nowS)) {
      const item = JSON.parse(body.toString('utf8'));
      // What finished comes from the signed body (a task names its workflow), not from the unsigned Tagflow-Event header.
      const event = item.workflow_id ? 'task.finished' : 'workflow.finished';
      // Here an engine would resume whatever waited for this task or workflow.
      console.log(
        `verified ${event} ${item.id} ${item.state}${item.exit_code === null || item.exit_code === undefined ? '' : ` exit ${item.exit_code}`}`,
      );
    }
    res.writeHead(204).end();
  });
});
const port = Number(process.env.PORT ?? 9090);
server.listen(port, process.env.HOST ?? '0.0.0.0', () => console.log(`listening on ${server.address().port}`));
