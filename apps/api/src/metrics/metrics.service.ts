import { Injectable } from '@nestjs/common';

type Labels = Record<string, string>;

interface Metric {
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, number>;
  read?: () => number;
}

/** A few process-local metrics in the Prometheus text format; no dependency needed. */
@Injectable()
export class MetricsService {
  private readonly metrics = new Map<string, Metric>();

  constructor() {
    this.gauge('process_resident_memory_bytes', 'Resident memory of this API process.', () =>
      process.memoryUsage.rss(),
    );
    this.gauge(
      'nodejs_heap_used_bytes',
      'JavaScript heap in use in this API process.',
      () => process.memoryUsage().heapUsed,
    );
  }

  counter(name: string, help: string): (labels?: Labels, by?: number) => void {
    const metric = this.define(name, help, 'counter');
    return (labels = {}, by = 1) => {
      const key = labelKey(labels);
      metric.values.set(key, (metric.values.get(key) ?? 0) + by);
    };
  }

  /**
   * For errors a step may go on without (a Redis mirror write the reconciler redoes, say):
   * a handler that counts the error in `tagflow_errors_ignored_total{where}` and tells
   * `log`, so nothing is dropped silently.
   */
  ignored(where: string, log: (where: string, error: string) => void): (e: unknown) => void {
    const count = this.counter(
      'tagflow_errors_ignored_total',
      'Errors a step went on without (the reconciler or a retry covers them), by where.',
    );
    return (e: unknown) => {
      count({ where });
      log(where, e instanceof Error ? e.message : String(e));
    };
  }

  /** A gauge read when scraped. */
  gauge(name: string, help: string, read: () => number): void {
    this.define(name, help, 'gauge').read = read;
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, m] of this.metrics) {
      lines.push(`# HELP ${name} ${m.help}`, `# TYPE ${name} ${m.type}`);
      if (m.read) lines.push(`${name} ${m.read()}`);
      else if (m.values.size === 0) lines.push(`${name} 0`);
      for (const [labels, value] of m.values) lines.push(`${name}${labels} ${value}`);
    }
    return lines.join('\n') + '\n';
  }

  private define(name: string, help: string, type: Metric['type']): Metric {
    let m = this.metrics.get(name);
    if (!m) this.metrics.set(name, (m = { help, type, values: new Map() }));
    return m;
  }
}

function labelKey(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`).join(',')}}`;
}
