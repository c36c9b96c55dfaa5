import { Graph as DagreGraph, layout as dagreLayout } from '@dagrejs/dagre';
import type { Graph, GraphNode } from './model';

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function sizeOf(n: GraphNode): { width: number; height: number } {
  switch (n.type) {
    case 'task':
      return { width: 190, height: 46 };
    case 'cluster':
      return { width: 220, height: 64 };
    case 'tag':
    case 'data':
      return { width: 150, height: 30 };
  }
}

/** Positions (top-left corners) by node id, dependencies flowing left to right. */
export function layoutGraph(graph: Graph): Map<string, Box> {
  const g = new DagreGraph({ multigraph: false });
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 60, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.id, sizeOf(n));
  for (const e of graph.edges) g.setEdge(e.source, e.target);
  dagreLayout(g);
  const boxes = new Map<string, Box>();
  for (const n of graph.nodes) {
    const placed = g.node(n.id) as { x: number; y: number; width: number; height: number };
    boxes.set(n.id, {
      x: placed.x - placed.width / 2,
      y: placed.y - placed.height / 2,
      width: placed.width,
      height: placed.height,
    });
  }
  return boxes;
}
