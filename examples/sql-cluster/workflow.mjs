// A SQL-cluster-style deployment: prepare every node, pick a master, pass the master's
// address to the others, then join the replicas to it.
//
// - prepare-dbN runs on each node and reports its address and free disk;
// - pick-master reads all of them through input references and writes sql.master
//   (declared in `produces`, found in its output at that path);
// - setup-dbN on each node reads {{ data.sql.master }}: the service holds it WAITING
//   until the master is picked. The master initialises and publishes sql.master.ready;
//   replicas block on that key (a blocking read) before they join.
const hosts = ['db1', 'db2', 'db3'];

const prepare = (host, i) => `
set -eu
addr="127.0.0.${10 + i}"
disk=$(( (${i} * 37) % 100 + 50 ))
echo "{\\"host\\": \\"${host}\\", \\"address\\": \\"$addr\\", \\"disk_gb\\": $disk}" > "$TAGFLOW_OUTPUT"
`;

const pick = `
set -eu
# The candidates arrive resolved in the input: pick the one with the most disk.
node -e '
  const fs = require("fs");
  const c = JSON.parse(fs.readFileSync(process.env.TAGFLOW_INPUT, "utf8")).candidates;
  const best = c.reduce((a, b) => (b.disk_gb > a.disk_gb ? b : a));
  fs.writeFileSync(process.env.TAGFLOW_OUTPUT, JSON.stringify({ sql: { master: { host: best.host, address: best.address } } }));
'
echo "master: $(cat "$TAGFLOW_OUTPUT")"
`;

const setup = (host) => `
set -eu
me='${host}'
field() { node -e 'const m = JSON.parse(require("fs").readFileSync(process.env.TAGFLOW_INPUT, "utf8")).master; console.log(m[process.argv[1]])' "$1"; }
master_host=$(field host)
master_addr=$(field address)
if [ "$me" = "$master_host" ]; then
  echo "initialising the master on $master_addr"
  tagflow-worker data put sql.master.ready "\\"$master_addr\\""
  echo '{"role": "master"}' > "$TAGFLOW_OUTPUT"
else
  echo "waiting for the master at $master_addr"
  ready=$(tagflow-worker data get sql.master.ready --wait 120)
  echo "joining $ready as a replica"
  echo "{\\"role\\": \\"replica\\", \\"following\\": $ready}" > "$TAGFLOW_OUTPUT"
fi
`;

export default {
  // A worker's tags are what it can do: its host, and the phases of this cluster's setup (a
  // task runs where every one of its tags is; `requires_tags: ['setup']` waits for the phase).
  servers: Object.fromEntries(hosts.map((h) => [h, [`host:${h}`, 'prepare', 'setup']])),
  workflow: {
    name: 'sql-cluster',
    sealed: true,
    tasks: [
      ...hosts.map((h, i) => ({ name: `prepare-${h}`, tags: [`host:${h}`, 'prepare'], action: { type: 'shell', script: prepare(h, i + 1) } })),
      {
        name: 'pick-master', tags: ['host:db1'], produces: ['sql.master'],
        input: { candidates: hosts.map((h) => `{{ tasks.prepare-${h}.output }}`) },
        action: { type: 'shell', script: pick },
      },
      ...hosts.map((h) => ({
        // Whichever becomes the master announces itself: a task's lease may write only the keys it produces.
        name: `setup-${h}`, tags: [`host:${h}`, 'setup'], timeout_s: 300, produces: ['sql.master.ready'],
        input: { master: '{{ data.sql.master }}' },
        action: { type: 'shell', script: setup(h) },
      })),
      { name: 'check', tags: ['host:db1'], requires_tags: ['setup'], input: { roles: hosts.map((h) => `{{ tasks.setup-${h}.output.role }}`) },
        action: { type: 'shell', command: 'cp "$TAGFLOW_INPUT" "$TAGFLOW_OUTPUT"; cat "$TAGFLOW_INPUT"' } },
    ],
  },
};
