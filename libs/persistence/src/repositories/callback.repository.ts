import type { EntityManager } from 'typeorm';
import { sql } from '../dialect.js';

export type DeliveryState = 'pending' | 'delivered' | 'failed';

/** One try at delivering a callback. */
export interface DeliveryAttempt {
  at: number;
  /** The receiver's HTTP status, or null when none came (refused, timed out, unreachable). */
  status: number | null;
  error: string | null;
  ms: number;
}

export interface CallbackDeliveryRow {
  id: string;
  dedupe_key: string;
  namespace: string;
  workflow_id: string;
  task_id: string | null;
  event: 'workflow.finished' | 'task.finished';
  url: string;
  secret: string | null;
  /** The JSON sent, exactly as signed. */
  body: string;
  state: DeliveryState;
  attempts: number;
  next_attempt_at: number;
  last_status: number | null;
  last_error: string | null;
  history: DeliveryAttempt[];
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
}

/** Tries kept in a delivery's history (the first ones and the latest). */
const HISTORY_KEPT = 50;

function deliveryRow(r: Record<string, unknown>): CallbackDeliveryRow {
  const ms = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: r.id as string,
    dedupe_key: r.dedupe_key as string,
    namespace: r.namespace as string,
    workflow_id: r.workflow_id as string,
    task_id: (r.task_id as string | null) ?? null,
    event: r.event as CallbackDeliveryRow['event'],
    url: r.url as string,
    secret: (r.secret as string | null) ?? null,
    body: r.body as string,
    state: r.state as DeliveryState,
    attempts: Number(r.attempts),
    next_attempt_at: Number(r.next_attempt_at),
    last_status: ms(r.last_status),
    last_error: (r.last_error as string | null) ?? null,
    history: JSON.parse(r.history as string) as DeliveryAttempt[],
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    delivered_at: ms(r.delivered_at),
  };
}

/** The callback outbox. */
export class CallbackRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: a delivery to make. Writes it unless one with its dedupe_key exists (the same finish announced twice). */
  async enqueue(
    d: Pick<
      CallbackDeliveryRow,
      'id' | 'dedupe_key' | 'namespace' | 'workflow_id' | 'task_id' | 'event' | 'url' | 'secret' | 'body'
    >,
    now: number,
  ): Promise<void> {
    await sql(
      this.em,
      `INSERT INTO callback_delivery (id, dedupe_key, namespace, workflow_id, task_id, event, url, secret, body, state, attempts, next_attempt_at, last_status, last_error, history, created_at, updated_at, delivered_at)
       VALUES (:id, :key, :ns, :wf, :task, :event, :url, :secret, :body, 'pending', 0, :now, NULL, NULL, '[]', :now, :now, NULL)
       ON CONFLICT (dedupe_key) DO NOTHING`,
      {
        id: d.id,
        key: d.dedupe_key,
        ns: d.namespace,
        wf: d.workflow_id,
        task: d.task_id,
        event: d.event,
        url: d.url,
        secret: d.secret,
        body: d.body,
        now,
      },
    );
  }

  /**
   * Takes: the time, a bound, and how long a delivery in flight is left alone. Claims due
   * pending deliveries: each claimed row's next attempt moves past the flight time, so
   * another replica does not send it meanwhile (if this one dies, it is sent again then).
   * Returns: the claimed rows.
   */
  async claimDue(now: number, limit: number, flightMs: number): Promise<CallbackDeliveryRow[]> {
    const { rows } = await sql(
      this.em,
      `SELECT id FROM callback_delivery WHERE state = 'pending' AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :lim`,
      { now, lim: limit },
    );
    const out: CallbackDeliveryRow[] = [];
    for (const r of rows) {
      const { affected } = await sql(
        this.em,
        `UPDATE callback_delivery SET next_attempt_at = :later, updated_at = :now WHERE id = :id AND state = 'pending' AND next_attempt_at <= :now`,
        { id: r.id, now, later: now + flightMs + out.length }, // each claim its own time: recordAttempt's guard
      );
      if (affected === 0) continue;
      const { rows: full } = await sql(this.em, 'SELECT * FROM callback_delivery WHERE id = :id', { id: r.id });
      out.push(deliveryRow(full[0]));
    }
    return out;
  }

  /**
   * Records a try: delivered, or the next try at `next` (null: given up, `failed`); only while
   * the row is still under the claim it was sent under (`d.next_attempt_at`, as claimDue
   * returned it): a try that outlived its claim, sent again meanwhile by another replica,
   * changes nothing. Returns: whether it was recorded.
   */
  async recordAttempt(
    d: CallbackDeliveryRow,
    attempt: DeliveryAttempt,
    outcome: { delivered: true } | { delivered: false; next: number | null },
    now: number,
  ): Promise<boolean> {
    const history = [...d.history, attempt];
    if (history.length > HISTORY_KEPT) history.splice(10, history.length - HISTORY_KEPT);
    const state: DeliveryState = outcome.delivered ? 'delivered' : outcome.next === null ? 'failed' : 'pending';
    const { affected } = await sql(
      this.em,
      `UPDATE callback_delivery SET state = :state, attempts = attempts + 1, next_attempt_at = :next, last_status = :status, last_error = :error,
         history = :history, updated_at = :now, delivered_at = :delivered WHERE id = :id AND state = 'pending' AND next_attempt_at = :claimed`,
      {
        id: d.id,
        claimed: d.next_attempt_at,
        state,
        next: outcome.delivered || outcome.next === null ? d.next_attempt_at : outcome.next,
        status: attempt.status,
        error: attempt.error,
        history: JSON.stringify(history),
        now,
        delivered: outcome.delivered ? now : null,
      },
    );
    return affected > 0;
  }

  /**
   * Deliveries outlive their workflow (one deleted at once after it finished still announces
   * it); delivered and failed ones last changed before `before` go, `limit` at most. Returns: how many.
   */
  async expire(before: number, limit: number): Promise<number> {
    const { rows } = await sql(
      this.em,
      `SELECT id FROM callback_delivery WHERE state <> 'pending' AND updated_at < :before LIMIT :lim`,
      { before, lim: limit },
    );
    if (rows.length === 0) return 0;
    await sql(this.em, 'DELETE FROM callback_delivery WHERE id IN (:ids)', { ids: rows.map((r) => r.id) });
    return rows.length;
  }

  /** Returns: a workflow's deliveries (its own and its tasks'), oldest first, at most `limit`; without their bodies, and secrets only as whether there is one. */
  async ofWorkflow(workflowId: string, limit: number): Promise<Omit<CallbackDeliveryRow, 'body'>[]> {
    const { rows } = await sql(
      this.em,
      `SELECT id, dedupe_key, namespace, workflow_id, task_id, event, url, CASE WHEN secret IS NULL THEN NULL ELSE '' END AS secret, '' AS body, state, attempts,
              next_attempt_at, last_status, last_error, history, created_at, updated_at, delivered_at
         FROM callback_delivery WHERE workflow_id = :wf ORDER BY created_at, id LIMIT :lim`,
      { wf: workflowId, lim: limit },
    );
    return rows.map(deliveryRow);
  }
}
