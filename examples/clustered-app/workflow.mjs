// A clustered application server: a cluster manager computes each node's config and
// publishes it as cluster.<node>.config; every node's task starts at once and blocks
// reading its own key until the manager has written it.
const nodes = ['node1', 'node2', 'node3'];

const plan = `
set -eu
seeds='${nodes.join(',')}'
i=0
for node in ${nodes.join(' ')}; do
  i=$((i + 1))
  tagflow-worker data put "cluster.$node.config" "{\\"node_id\\": $i, \\"heap\\": \\"$((i * 512))m\\", \\"seeds\\": \\"$seeds\\"}"
done
echo '{"nodes": ${nodes.length}}' > "$TAGFLOW_OUTPUT"
`;

const start = (node) => `
set -eu
echo "waiting for my config..."
cfg=$(tagflow-worker data get cluster.${node}.config --wait 120)
echo "$cfg" > ./server.conf
echo "started with $(cat ./server.conf)"
echo "{\\"node\\": \\"${node}\\", \\"config\\": $cfg}" > "$TAGFLOW_OUTPUT"
`;

export default {
  // A worker's tags are what it can do: the nodes run `cluster-node` tasks, each on its host.
  servers: { manager: ['host:manager'], ...Object.fromEntries(nodes.map((n) => [n, [`host:${n}`, 'cluster-node']])) },
  workflow: {
    name: 'clustered-app',
    sealed: true,
    tasks: [
      // Nodes first: they are ready at once and wait inside their scripts.
      ...nodes.map((n) => ({
        name: `start-${n}`, tags: [`host:${n}`, 'cluster-node'], timeout_s: 300,
        action: { type: 'shell', script: start(n) },
      })),
      {
        name: 'plan', tags: ['host:manager'], produces: nodes.map((n) => `cluster.${n}.config`),
        action: { type: 'shell', script: plan },
      },
      {
        name: 'verify', tags: ['host:manager'], requires_tags: ['cluster-node'],
        input: { heaps: nodes.map((n) => `{{ tasks.start-${n}.output.config.heap }}`) },
        action: { type: 'shell', command: 'echo "cluster up: $(cat "$TAGFLOW_INPUT")"; cp "$TAGFLOW_INPUT" "$TAGFLOW_OUTPUT"' },
      },
    ],
  },
};
