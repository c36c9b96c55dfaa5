import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs a function of scripts/lib/services.sh and answers what it printed. */
export function services(fn: string, ...args: string[]): string {
  return execFileSync('bash', ['-c', `. scripts/lib/services.sh; ${fn} "$@"`, fn, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

/** redis-cli against one node (or sentinel) on loopback. */
export function redisCli(port: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function pidOf(dir: string, port: number): number {
  return Number(readFileSync(join(dir, `${port}.pid`), 'utf8'));
}

abstract class Topology {
  protected constructor(readonly dir: string) {}

  /** SIGKILL of one node, as a crash would. */
  kill9(port: number): void {
    try {
      process.kill(pidOf(this.dir, port), 'SIGKILL');
    } catch {
      // gone already
    }
  }

  stop(): void {
    // Read before the stop: a node removes its pid file as it exits.
    const pids = readdirSync(this.dir)
      .filter((n) => n.endsWith('.pid'))
      .map((f) => Number(readFileSync(join(this.dir, f), 'utf8')));
    services('stop_redis_nodes', this.dir);
    // Wait for them to be gone (they write their last files as they exit).
    for (const pid of pids) for (let i = 0; i < 100 && alive(pid); i++) execFileSync('sleep', ['0.05']);
    // Nodes write their last files as they exit: the directory goes once they are done.
    rmSync(this.dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 250 });
  }
}

/** A master, its replica and three sentinels watching it as "tagflow" (scripts/lib/services.sh). */
export class SentinelSetup extends Topology {
  private constructor(
    dir: string,
    readonly masterPort: number,
    readonly replicaPort: number,
    readonly sentinels: string,
  ) {
    super(dir);
  }

  static start(): SentinelSetup {
    const dir = mkdtempSync(join(tmpdir(), 'tagflow-sentinel-'));
    chmodSync(dir, 0o755);
    const [master, replica, sentinels] = services('start_redis_sentinel', dir).split(' ');
    return new SentinelSetup(dir, Number(master), Number(replica), sentinels);
  }

  get sentinelPorts(): number[] {
    return this.sentinels.split(',').map((s) => Number(s.split(':')[1]));
  }

  /** The port of the master the sentinels name now. */
  master(): number {
    return Number(redisCli(this.sentinelPorts[0], 'sentinel', 'get-master-addr-by-name', 'tagflow').split('\n')[1]);
  }

  /** Every sentinel's setting for the master (e.g. down-after-milliseconds). */
  set(option: string, value: string): void {
    for (const p of this.sentinelPorts) redisCli(p, 'sentinel', 'set', 'tagflow', option, value);
  }

  failover(): void {
    redisCli(this.sentinelPorts[0], 'sentinel', 'failover', 'tagflow');
  }
}

/** Six nodes: three masters with a replica each (scripts/lib/services.sh). */
export class ClusterSetup extends Topology {
  private constructor(
    dir: string,
    readonly nodes: string,
  ) {
    super(dir);
  }

  static start(): ClusterSetup {
    const dir = mkdtempSync(join(tmpdir(), 'tagflow-cluster-'));
    chmodSync(dir, 0o755);
    return new ClusterSetup(dir, services('start_redis_cluster', dir));
  }

  get ports(): number[] {
    return this.nodes.split(',').map((s) => Number(s.split(':')[1]));
  }

  /** Live masters and the slot ranges each holds, from any node that answers. */
  masters(): { port: number; replicaOf: null; slots: string[] }[] {
    for (const p of this.ports) {
      try {
        return redisCli(p, 'cluster', 'nodes')
          .split('\n')
          .map((l) => l.split(' '))
          .filter((f) => f[2].includes('master') && !f[2].includes('fail'))
          .map((f) => ({ port: Number(f[1].split(':')[1].split('@')[0]), replicaOf: null, slots: f.slice(8) }));
      } catch {
        // that node is down: ask another
      }
    }
    throw new Error('no cluster node answers');
  }

  /** The port of the master that holds `key`'s slot. */
  masterOf(key: string): number {
    const slot = Number(redisCli(this.ports[0], 'cluster', 'keyslot', key));
    const owner = this.masters().find((m) =>
      m.slots.some((range) => {
        const [from, to] = range.split('-').map(Number);
        return slot >= from && slot <= (to ?? from);
      }),
    );
    if (!owner) throw new Error(`no master holds slot ${slot}`);
    return owner.port;
  }

  /** A replica of the master on `port` takes over by hand (CLUSTER FAILOVER). */
  failoverOf(port: number): void {
    const id = redisCli(port, 'cluster', 'myid');
    const replica = redisCli(port, 'cluster', 'nodes')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[3] === id);
    if (!replica) throw new Error(`master ${port} has no replica`);
    redisCli(Number(replica[1].split(':')[1].split('@')[0]), 'cluster', 'failover');
  }
}
