import { memo, useEffect, useMemo, useRef, type RefObject } from 'react';
import {
  Background,
  Controls,
  Handle,
  MiniMap,
  Position,
  ReactFlow,
  useNodesInitialized,
  useReactFlow,
  type Edge,
  type Node,
  type NodeProps,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { layoutGraph, sizeOf, type Box } from './layout';
import type { Graph, GraphNode, GraphTask } from './model';
import { TASK_STATES } from '@tagflow/domain/states.js';

type TaskNodeData = { task: GraphTask };
type GroupNodeData = Extract<GraphNode, { type: 'cluster' }> & { expanded: false };
type SmallNodeData = { label: string; title: string; written?: boolean };

function TaskNode({ data }: NodeProps<Node<TaskNodeData, 'task'>>) {
  const t = data.task;
  const mark = t.kind === 'handler' ? 'on_error' : t.kind === 'revert' ? 'revert' : null;
  return (
    <div
      className={`node node-task state-${t.state}`}
      data-task={t.name}
      data-state={t.state}
      title={`${t.name} · ${t.state}${t.tags.length ? ` · ${t.tags.join(', ')}` : ''}`}
    >
      <Handle type="target" position={Position.Left} />
      <div className="node-name">{t.name}</div>
      <div className="node-sub">
        <span>{t.state.toLowerCase()}</span>
        {mark ? <span className="node-mark">{mark}</span> : null}
      </div>
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

function GroupNode({ data }: NodeProps<Node<GroupNodeData, 'cluster'>>) {
  const total = data.size;
  return (
    <div
      className="node node-group"
      data-group={data.label}
      title={`${data.label}: ${total} tasks (click to draw them one by one)`}
    >
      <Handle type="target" position={Position.Left} />
      <div className="node-name">
        {data.label} <span className="muted">× {total}</span>
      </div>
      <div className="bar">
        {TASK_STATES.filter((s) => (data.counts[s] ?? 0) > 0).map((s) => (
          <span
            key={s}
            className={`bar-part state-${s}`}
            style={{ flexGrow: data.counts[s] }}
            title={`${data.counts[s]} ${s}`}
          />
        ))}
      </div>
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

function SmallNode({ data, type }: NodeProps<Node<SmallNodeData, 'tag' | 'data'>>) {
  return (
    <div className={`node node-small node-${type}${data.written === false ? ' pending' : ''}`} title={data.title}>
      <Handle type="target" position={Position.Left} />
      {data.label}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

const nodeTypes = { task: memo(TaskNode), cluster: memo(GroupNode), tag: memo(SmallNode), data: memo(SmallNode) };

const EDGE_CLASS = { requires: 'edge-requires', tag: 'edge-tag', data: 'edge-data', handler: 'edge-handler' } as const;

/**
 * Fits the graph into view when its shape changes (tasks come while the page loads or
 * the workflow grows), until the user pans or zooms: then the view is theirs.
 */
function AutoFit({ shapeKey, userMoved }: { shapeKey: string; userMoved: RefObject<boolean> }) {
  const { fitView } = useReactFlow();
  const measured = useNodesInitialized();
  useEffect(() => {
    if (measured && !userMoved.current) void fitView({ padding: 0.1, maxZoom: 1.2 });
  }, [shapeKey, measured, fitView, userMoved]);
  return null;
}

/** Above this many boxes a map of the whole graph helps find one's way. */
const MINIMAP_FROM = 40;

export interface GraphProps {
  graph: Graph;
  onOpenTask: (id: string) => void;
  onExpandGroup: (id: string) => void;
  onOpenData: (key: string) => void;
}

/**
 * A graph node as React Flow draws it. Sizes and handles are fixed (the layout used them)
 * and given, not measured: a node React Flow had to measure stayed hidden, without edges,
 * when the page replaced it while it kept updating.
 */
function nodeOf(n: GraphNode, box: Box): Node {
  const position = { x: box.x, y: box.y };
  const { width, height } = box;
  const fixed = {
    draggable: false,
    connectable: false,
    width,
    height,
    measured: { width, height },
    handles: [
      { type: 'target' as const, position: Position.Left, x: -0.5, y: height / 2 - 0.5 },
      { type: 'source' as const, position: Position.Right, x: width - 0.5, y: height / 2 - 0.5 },
    ],
  };
  switch (n.type) {
    case 'task':
      return { id: n.id, type: 'task', position, data: { task: n.task }, ...fixed };
    case 'cluster':
      return { id: n.id, type: 'cluster', position, data: { ...n }, ...fixed };
    case 'tag':
      return {
        id: n.id,
        type: 'tag',
        position,
        data: { label: `tag ${n.tag}`, title: `requires_tags ${n.tag}: ${n.members} current member(s)` },
        ...fixed,
      };
    case 'data':
      return {
        id: n.id,
        type: 'data',
        position,
        data: {
          label: `data ${n.key}`,
          title: `data key ${n.key}${n.written ? '' : ' (not written yet)'}`,
          written: n.written,
        },
        ...fixed,
      };
  }
}

/**
 * The workflow's graph. Positions are laid out again only when its shape changes (a
 * task, selector member or data key comes); a state change only repaints a node.
 */
export function WorkflowGraph({ graph, onOpenTask, onExpandGroup, onOpenData }: GraphProps) {
  // The shape key stands for the nodes and edges: a state change alone keeps the layout.
  const boxes = useMemo(() => layoutGraph(graph), [graph.shapeKey]);
  // A node whose content and place did not change is the same object as before, so React
  // Flow and the memoized node components skip it: a state change repaints one box.
  const previous = useRef(new Map<string, { box: Box; key: unknown; node: Node }>());
  const nodes = useMemo<Node[]>(() => {
    const next = new Map<string, { box: Box; key: unknown; node: Node }>();
    const list = graph.nodes.map((n) => {
      const box = boxes.get(n.id) ?? { x: 0, y: 0, ...sizeOf(n) };
      const key =
        n.type === 'task'
          ? n.task
          : n.type === 'cluster'
            ? JSON.stringify([n.size, n.counts])
            : n.type === 'tag'
              ? n.members
              : n.written;
      const kept = previous.current.get(n.id);
      const node = kept && kept.box === box && kept.key === key ? kept.node : nodeOf(n, box);
      next.set(n.id, { box, key, node });
      return node;
    });
    previous.current = next;
    return list;
  }, [graph, boxes]);
  const edges = useMemo<Edge[]>(
    () =>
      graph.edges.map((e) => ({
        id: e.id,
        source: e.source,
        target: e.target,
        className: EDGE_CLASS[e.kind],
        label: e.count > 1 ? String(e.count) : undefined,
        animated: e.kind === 'data',
      })),
    [graph],
  );
  const userMoved = useRef(false);
  return (
    <div className="graph" data-testid="graph">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ padding: 0.1, maxZoom: 1.2 }}
        onMoveStart={(event) => {
          if (event) userMoved.current = true;
        }}
        minZoom={0.05}
        onlyRenderVisibleElements
        nodesConnectable={false}
        nodesDraggable={false}
        edgesFocusable={false}
        proOptions={{ hideAttribution: false }}
        onNodeClick={(_e, node) => {
          if (node.type === 'task') onOpenTask(node.id);
          else if (node.type === 'cluster') onExpandGroup(node.id);
          else if (node.type === 'data') onOpenData(node.id.slice('data:'.length));
        }}
      >
        <AutoFit shapeKey={graph.shapeKey} userMoved={userMoved} />
        <Background gap={24} />
        <Controls showInteractive={false} />
        {nodes.length < MINIMAP_FROM ? null : (
          <MiniMap
            pannable
            zoomable
            nodeClassName={(n) =>
              n.type === 'task' ? `state-${(n.data as TaskNodeData).task.state}` : 'minimap-other'
            }
          />
        )}
      </ReactFlow>
    </div>
  );
}
