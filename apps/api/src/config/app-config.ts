import { plainToInstance, Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength, validateSync } from 'class-validator';
import { fileURLToPath } from 'node:url';
import { LIMITS } from '@tagflow/domain';
import type { RedisTarget } from '@tagflow/queue';

/** dist/ui beside the built API (this file is dist/apps/api/src/config/app-config.js). */
function defaultUiDir(): string {
  return fileURLToPath(new URL('../../../../ui', import.meta.url));
}

const HOST_PORTS = /^[A-Za-z0-9_.:[\]-]+:\d{1,5}(,[A-Za-z0-9_.:[\]-]+:\d{1,5})*$/;

const toInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;

/**
 * The API's whole configuration, read from the environment once at start. A bad value
 * stops the process with a message naming the variable.
 */
export class AppConfig {
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT = 8080;

  /** Loopback by default: nothing is exposed until the operator says so. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  HOST = '127.0.0.1';

  @IsOptional()
  @IsString()
  @Matches(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, {
    message: 'DATABASE_URL must be sqlite:PATH or postgres://USER:PASS@HOST:PORT/DB',
  })
  DATABASE_URL = 'sqlite:./data/tagflow.db';

  /**
   * PostgreSQL: `on` runs statements named (prepared), which spares the server most of its
   * planning. Directly against PostgreSQL; not through PgBouncer 1.18 in transaction mode,
   * which does not carry named statements. No effect on SQLite.
   */
  @IsOptional()
  @IsIn(['on', 'off'], { message: 'DATABASE_PREPARED_STATEMENTS must be on or off' })
  DATABASE_PREPARED_STATEMENTS: 'on' | 'off' = 'off';

  @IsOptional()
  @IsString()
  @Matches(/^rediss?:\/\/.+/, { message: 'REDIS_URL must be redis://HOST:PORT[/DB]' })
  REDIS_URL = 'redis://127.0.0.1:6379';

  /**
   * Redis through Sentinel: the sentinels (`host:port,host:port,...`) and the name of the
   * master they watch (REDIS_SENTINEL_NAME, default `mymaster`). REDIS_URL is not used then.
   */
  @IsOptional()
  @IsString()
  @Matches(HOST_PORTS, { message: 'REDIS_SENTINELS must be host:port[,host:port...]' })
  REDIS_SENTINELS?: string;

  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9_.-]{1,128}$/, { message: 'REDIS_SENTINEL_NAME must be 1-128 characters of [A-Za-z0-9_.-]' })
  REDIS_SENTINEL_NAME = 'mymaster';

  /** The sentinels' own password, when they have one. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  REDIS_SENTINEL_PASSWORD?: string;

  /** Redis Cluster: some of its nodes (`host:port,...`); the others are found from them. REDIS_URL is not used then. */
  @IsOptional()
  @IsString()
  @Matches(HOST_PORTS, { message: 'REDIS_CLUSTER_NODES must be host:port[,host:port...]' })
  REDIS_CLUSTER_NODES?: string;

  /** The ACL user and password of the Redis nodes under Sentinel or in a Cluster (with REDIS_URL, put them in the URL). */
  @IsOptional()
  @IsString()
  @MinLength(1)
  REDIS_USERNAME?: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  REDIS_PASSWORD?: string;

  /** Prefix of every Redis key, so several Tagflow installations can share one Redis. */
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'QUEUE_PREFIX must be 1-64 characters of [A-Za-z0-9_.-]' })
  QUEUE_PREFIX = 'tagflow';

  /** Largest request body, in bytes. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(64 * 1024 * 1024)
  BODY_LIMIT_BYTES = 1024 * 1024;

  /**
   * The first admin key's token (`tfk_` and at least 22 base64url characters, 128 bits):
   * written as a key at start when absent. Without any key the API runs open, and only
   * on a loopback address.
   */
  @IsOptional()
  @IsString()
  @Matches(LIMITS.keyTokenPattern, {
    message:
      'TAGFLOW_ADMIN_TOKEN must be tfk_ followed by at least 22 characters of [A-Za-z0-9_-] (make one with: node dist/apps/api/main.js keys token)',
  })
  TAGFLOW_ADMIN_TOKEN?: string;

  /** Deprecated: taken as TAGFLOW_ADMIN_TOKEN (an admin key with this token). */
  @IsOptional()
  @IsString()
  @MinLength(16, { message: 'API_TOKEN must be at least 16 characters' })
  API_TOKEN?: string;

  /** The built web UI (`npm run build` writes it to dist/ui), served at /ui. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  UI_DIR = defaultUiDir();

  @IsOptional()
  @IsIn(['error', 'warn', 'info', 'debug'])
  LOG_LEVEL: 'error' | 'warn' | 'info' | 'debug' = 'info';

  /** How often leases, timeouts and Redis are checked against the database. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(50)
  @Max(60000)
  RECONCILE_INTERVAL_MS = 1000;

  /**
   * Waiting tasks one operation (a report, a submission, a step of a continuation) evaluates
   * at most; the rest are evaluated in later transactions by the reconciler. Lower it to
   * shorten the longest transaction on a workflow; tests lower it to exercise continuations.
   */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  EVALUATION_BUDGET = 5000;

  /** A tag set with no READY or RUNNING task and no use for this long has its queue closed and removed from Redis. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(7 * 86400)
  TAGSET_IDLE_S = 600;

  /** Days a finished workflow (and an audit record) is kept, unless the workflow says otherwise. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3650)
  RETENTION_DAYS = 30;

  /** Requests a second each credential may make, on average, on all API replicas together (0: no limit). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  RATE_LIMIT_RPS = 2000;

  /** Requests a credential may make at once above its rate, on all API replicas together. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  RATE_LIMIT_BURST = 4000;

  /**
   * Requests a second, on average, that one client address may send to routes that need a
   * credential without bringing a valid one (401s), and how many at once above that. Over
   * it: 429, before the token is looked up. Open routes (/health, /metrics, /docs, /ui) are not counted.
   */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  RATE_LIMIT_ANON_RPS = 5;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  RATE_LIMIT_ANON_BURST = 50;

  /**
   * Which proxies in front of the API to believe about the client's address
   * (X-Forwarded-For): unset (the connection's own
   * address), `loopback`, a list of addresses or subnets, or a hop count. Set it behind a
   * load balancer so per-address limits count clients, not the balancer.
   */
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9.:/, ]{1,512}$/, {
    message: 'TRUST_PROXY must be loopback, a hop count, or a comma-separated list of addresses or subnets',
  })
  TRUST_PROXY?: string;

  /** Requests one credential may have parked at once on all API replicas together: long-polls and blocking reads (`wait_s`). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  LONG_WAITS_PER_CREDENTIAL = 5000;

  /** Followed streams (live output, workflow events) one credential may hold open at once on all API replicas together. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100_000)
  STREAMS_PER_CREDENTIAL = 50;

  /** The shortest time between two ticks of a schedule (a cron firing more often is refused). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(86400)
  SCHEDULE_MIN_INTERVAL_S = 60;

  /** 1: callbacks may go to loopback and link-local addresses (127.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10); refused by default. */
  @IsOptional()
  @IsIn(['0', '1'], { message: 'CALLBACK_ALLOW_PRIVATE must be 0 or 1' })
  CALLBACK_ALLOW_PRIVATE: '0' | '1' = '0';

  /** How long a callback's receiver has to answer one try. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(120_000)
  CALLBACK_TIMEOUT_MS = 10_000;

  /** The first retry's delay; each next one doubles (with jitter), up to CALLBACK_RETRY_MAX_MS. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(3_600_000)
  CALLBACK_RETRY_BASE_MS = 1000;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(86_400_000)
  CALLBACK_RETRY_MAX_MS = 600_000;

  /** A callback still not answered 2xx this long after its finish is given up (recorded as failed). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(30 * 86400)
  CALLBACK_GIVE_UP_S = 6 * 3600;

  /** How long graceful shutdown waits for in-flight requests. */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(600000)
  SHUTDOWN_GRACE_MS = 10000;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const keys = Object.keys(new AppConfig()).concat(
    'API_TOKEN',
    'TAGFLOW_ADMIN_TOKEN',
    'TRUST_PROXY',
    'REDIS_SENTINELS',
    'REDIS_SENTINEL_PASSWORD',
    'REDIS_CLUSTER_NODES',
    'REDIS_USERNAME',
    'REDIS_PASSWORD',
  );
  const raw: Record<string, string> = {};
  for (const key of keys) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const config = plainToInstance(AppConfig, raw);
  const errors = validateSync(config, { forbidUnknownValues: false });
  if (errors.length > 0) {
    const lines = errors.map(
      (e) =>
        `  ${e.property}=${JSON.stringify(raw[e.property] ?? '')}: ${Object.values(e.constraints ?? {}).join('; ')}`,
    );
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  if (config.REDIS_SENTINELS && config.REDIS_CLUSTER_NODES) {
    throw new Error(
      'invalid configuration:\n  REDIS_SENTINELS and REDIS_CLUSTER_NODES: set one of them (or neither, for REDIS_URL)',
    );
  }
  return config;
}

/** Where Redis is, from REDIS_SENTINELS, REDIS_CLUSTER_NODES or REDIS_URL (the first one set). */
export function redisTarget(c: AppConfig): RedisTarget {
  const auth = { username: c.REDIS_USERNAME, password: c.REDIS_PASSWORD };
  if (c.REDIS_SENTINELS) {
    return {
      mode: 'sentinel',
      sentinels: hostPorts(c.REDIS_SENTINELS),
      name: c.REDIS_SENTINEL_NAME,
      sentinelPassword: c.REDIS_SENTINEL_PASSWORD,
      ...auth,
    };
  }
  if (c.REDIS_CLUSTER_NODES) return { mode: 'cluster', nodes: hostPorts(c.REDIS_CLUSTER_NODES), ...auth };
  return { mode: 'single', url: c.REDIS_URL };
}

function hostPorts(list: string): { host: string; port: number }[] {
  return list.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    return { host: hp.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(hp.slice(i + 1)) };
  });
}
