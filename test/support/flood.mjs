// Sends requests without a credential from `clients` connections for `seconds`, each with a
// body of `bytes` (an object holding an array of small arrays), as an outsider would. Run as its own process, so the
// test that measures the API meanwhile does not share an event loop with the flood.
// Usage: node flood.mjs URL CLIENTS SECONDS BYTES  -> prints {"sent": n, "statuses": {...}}
import http from 'node:http';

const [url, clients, seconds, bytes] = [
  process.argv[2],
  Number(process.argv[3]),
  Number(process.argv[4]),
  Number(process.argv[5]),
];
const body = Buffer.from(`{"name": "flood", "tasks": [${'[1],'.repeat(Math.floor(bytes / 4) - 10)}[1]]}`);
const until = Date.now() + seconds * 1000;
const statuses = {};
let sent = 0;

function one() {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        res.resume();
        res.on('end', resolve);
        res.on('error', resolve);
      },
    );
    req.on('error', resolve); // the API closed the connection before the body was sent: expected
    req.end(body);
    sent++;
  });
}

await Promise.all(
  Array.from({ length: clients }, async () => {
    while (Date.now() < until) await one();
  }),
);
process.stdout.write(JSON.stringify({ sent, statuses }) + '\n');
