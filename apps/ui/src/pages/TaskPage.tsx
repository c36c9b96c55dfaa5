import { useEffect, useRef, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { LogStream, TagflowClient, Task, TaskEvent } from '@tagflow/client';
import { isTerminalTask, isTerminalWorkflow } from '@tagflow/domain/states.js';
import { ActionButton, Ago, ErrorBox, Json, PagePending, Section, StateBadge, Tags } from '../components';
import { href } from '../router';
import { errorText } from '../session';

/** A task: what it was given and gave back, its attempts, its live output, cancel and rerun. */
export function TaskPage({ client, id }: { client: TagflowClient; id: string }) {
  const queries = useQueryClient();
  const task = useQuery({
    queryKey: ['task', id],
    queryFn: () => client.getTask(id),
    // Not again after an error (a 404 stays a 404); slower once it finished.
    refetchInterval: (q) => (q.state.error ? false : q.state.data && isTerminalTask(q.state.data.state) ? 5000 : 1000),
  });
  const workflowId = task.data?.workflow_id;
  const workflow = useQuery({
    queryKey: ['workflow', workflowId],
    queryFn: () => client.getWorkflow(workflowId!),
    enabled: !!workflowId,
    refetchInterval: 5000,
  });
  const events = useQuery({
    queryKey: ['task-events', id, task.data?.state, task.data?.attempt],
    queryFn: () => client.taskEvents(id),
    enabled: !!task.data,
  });
  const workerId = task.data?.worker_id ?? null;
  const worker = useQuery({
    queryKey: ['worker', workerId],
    queryFn: () => client.getWorker(workerId!),
    enabled: !!workerId,
    staleTime: 60_000,
  });
  const t = task.data;
  if (!t) return <PagePending error={task.error} />;
  const refresh = async (run: () => Promise<Task>) => {
    const updated = await run();
    queries.setQueryData(['task', id], updated);
  };
  return (
    <main className="page">
      <div className="page-head">
        <div>
          <div className="crumbs">
            <a href={href.workflows()}>Workflows</a> /{' '}
            <a href={href.workflow(t.workflow_id)} data-testid="workflow-link">
              {workflow.data?.name ?? 'workflow'}
            </a>{' '}
            /
          </div>
          <h1>
            {t.name} <StateBadge state={t.state} />
            {t.handled ? (
              <span className="badge-open" title="its failure was handled by on_error">
                handled
              </span>
            ) : null}
          </h1>
          <div className="sub">
            <span className="mono small">{t.id}</span> · attempt {t.attempt}
            {t.retry.count > 0 ? ` (retries: ${t.retry.count})` : ''}
            {t.kind === 'task' ? null : (
              <>
                {' '}
                · {t.kind === 'handler' ? 'on_error handler' : 'revert'} of{' '}
                <a href={href.task(t.parent_task_id ?? '')}>its task</a>
              </>
            )}
            {t.cancel_requested && !isTerminalTask(t.state) ? (
              <>
                {' '}
                · <span className="warn">cancel requested</span>
              </>
            ) : null}
          </div>
        </div>
        <div className="buttons">
          {!isTerminalTask(t.state) ? (
            <ActionButton
              label="Cancel"
              danger
              confirm={`Cancel task ${t.name}?`}
              run={() => refresh(() => client.cancelTask(t.id))}
            />
          ) : null}
          {/* The API reruns an ERROR task of a workflow that has not finished. */}
          {t.state === 'ERROR' && workflow.data && !isTerminalWorkflow(workflow.data.state) ? (
            <ActionButton label="Rerun" run={() => refresh(() => client.rerunTask(t.id))} />
          ) : null}
        </div>
      </div>
      <div className="grid">
        <Section title="Summary">
          <dl className="facts">
            <dt>Tags</dt>
            <dd>
              <Tags tags={t.tags} />
            </dd>
            <dt>Action</dt>
            <dd className="mono small">{t.action.type}</dd>
            <dt>Worker</dt>
            <dd>
              {workerId ? (
                <>
                  <a href={href.workers()}>{worker.data?.name ?? workerId}</a>
                  {worker.data?.hostname ? <span className="muted"> on {worker.data.hostname}</span> : null}
                </>
              ) : (
                <span className="muted">—</span>
              )}
            </dd>
            <dt>Requires</dt>
            <dd>{[...t.requires, ...t.requires_tags.map((x) => `tag:${x}`)].join(', ') || '—'}</dd>
            <dt>Created</dt>
            <dd>
              <Ago at={t.created_at} />
            </dd>
            {t.priority !== 0 ? (
              <>
                <dt>Priority</dt>
                <dd>{t.priority}</dd>
              </>
            ) : null}
            {t.held_by_limit ? (
              <>
                <dt>Held</dt>
                <dd data-testid="held">
                  waiting for room under the {t.held_by_limit.scope} limit on{' '}
                  <span className="mono">{t.held_by_limit.tag}</span>
                </dd>
              </>
            ) : null}
            {t.callback ? (
              <>
                <dt>Callback</dt>
                <dd className="mono small">
                  {t.callback.url}
                  {t.callback.signed ? ' (signed)' : ''}
                </dd>
              </>
            ) : null}
            {t.not_before ? (
              <>
                <dt>Not before</dt>
                <dd>
                  <time dateTime={t.not_before}>{new Date(t.not_before).toLocaleString()}</time>
                </dd>
              </>
            ) : null}
            <dt>Started</dt>
            <dd>
              <Ago at={t.started_at} />
            </dd>
            <dt>Finished</dt>
            <dd>
              <Ago at={t.finished_at} />
            </dd>
            {t.exit_code !== null ? (
              <>
                <dt>Exit code</dt>
                <dd>{t.exit_code}</dd>
              </>
            ) : null}
            {t.progress !== null ? (
              <>
                <dt>Progress</dt>
                <dd>
                  <Json value={t.progress} />
                </dd>
              </>
            ) : null}
          </dl>
        </Section>
        <Section title="Error">
          {t.error ? (
            <div className="error-detail">
              <div>
                <strong>{t.error.code ?? 'ERROR'}</strong>
              </div>
              <pre className="json">{t.error.message}</pre>
            </div>
          ) : (
            <span className="muted">none</span>
          )}
        </Section>
      </div>
      <LogPanel client={client} task={t} />
      <div className="grid">
        <Section title="Input">
          <Json value={t.input} empty="{}" />
        </Section>
        <Section title="Resolved input">
          <Json
            value={t.resolved_input}
            empty={t.attempt > 0 ? 'the input as given (no references)' : 'resolved when handed to a worker'}
          />
        </Section>
      </div>
      <Section title="Output">
        <Json value={t.output} empty={isTerminalTask(t.state) ? 'none' : 'none yet'} />
      </Section>
      <Section title="Attempts">
        <ErrorBox error={events.error} />
        <Attempts events={events.data ?? []} />
      </Section>
      <details className="card">
        <summary>Task as JSON</summary>
        <Json value={{ ...t, events: events.data }} />
      </details>
    </main>
  );
}

function Attempts({ events }: { events: TaskEvent[] }) {
  if (events.length === 0) return <span className="muted">no transitions yet</span>;
  const byAttempt = new Map<number, TaskEvent[]>();
  for (const e of events) (byAttempt.get(e.attempt) ?? byAttempt.set(e.attempt, []).get(e.attempt)!).push(e);
  return (
    <div className="attempts">
      {[...byAttempt.entries()].map(([n, list]) => (
        <div key={n} className="attempt">
          <h3>{n === 0 ? 'Before the first attempt' : `Attempt ${n}`}</h3>
          <ol className="plain">
            {list.map((e, i) => (
              <li key={i}>
                <span className="small">{new Date(e.at).toLocaleTimeString()}</span>{' '}
                {e.from ? <StateBadge state={e.from} /> : null} → <StateBadge state={e.to} />
                {e.reason ? <span className="small muted"> {e.reason}</span> : null}
              </li>
            ))}
          </ol>
        </div>
      ))}
    </div>
  );
}

interface Piece {
  stream: LogStream;
  text: string;
}

/** Kept in the page at most: the newest output wins. */
const MAX_CHARS = 1 << 20;

/**
 * An attempt's output as it is written (the API's server-sent events, read with the
 * key in a header, so it never goes into a URL). Follows the newest attempt unless
 * one is chosen.
 */
function LogPanel({ client, task }: { client: TagflowClient; task: Task }) {
  const [chosen, setChosen] = useState<number | null>(null);
  const attempt = chosen ?? task.attempt;
  const [pieces, setPieces] = useState<Piece[]>([]);
  const [status, setStatus] = useState<string>('');
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLPreElement>(null);
  const stick = useRef(true);

  useEffect(() => {
    setPieces([]);
    setError(null);
    if (attempt < 1) {
      setStatus('no attempt yet');
      return;
    }
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    setStatus('following');
    void (async () => {
      try {
        let buffered: Piece[] = [];
        const flush = () => {
          timer = null;
          // Lines of an attempt no longer shown never reach the next one's log.
          if (abort.signal.aborted) return;
          const add = buffered;
          buffered = [];
          setPieces((old) => trim([...old, ...add]));
        };
        for await (const item of client.followTaskLogs(task.id, { attempt }, abort.signal)) {
          if (item.type === 'end') {
            if (timer) clearTimeout(timer);
            flush();
            setStatus(`attempt ${item.attempt} ended`);
            break;
          }
          buffered.push({ stream: item.stream, text: item.text });
          timer ??= setTimeout(flush, 100);
        }
      } catch (e) {
        if (!abort.signal.aborted) setError(errorText(e));
      }
    })();
    return () => {
      abort.abort();
      if (timer) clearTimeout(timer);
    };
  }, [client, task.id, attempt]);

  useEffect(() => {
    if (stick.current && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [pieces]);

  return (
    <Section
      title="Log"
      actions={
        <span className="log-head">
          {task.attempt > 1 ? (
            <select
              aria-label="attempt"
              value={attempt}
              onChange={(e) => setChosen(Number(e.target.value) === task.attempt ? null : Number(e.target.value))}
            >
              {Array.from({ length: task.attempt }, (_, i) => i + 1).map((n) => (
                <option key={n} value={n}>
                  attempt {n}
                </option>
              ))}
            </select>
          ) : null}
          <span className="muted small" data-testid="log-status">
            {status}
          </span>
        </span>
      }
    >
      {error ? (
        <div className="error" role="alert">
          {error}
        </div>
      ) : null}
      <pre
        className="log"
        data-testid="log"
        ref={box}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
        }}
      >
        {pieces.length === 0 ? (
          <span className="muted">{attempt < 1 ? 'It has not started.' : 'No output yet.'}</span>
        ) : (
          pieces.map((p, i) => (
            <span key={i} className={p.stream}>
              {p.text}
            </span>
          ))
        )}
      </pre>
    </Section>
  );
}

function trim(pieces: Piece[]): Piece[] {
  let total = 0;
  for (let i = pieces.length - 1; i >= 0; i--) {
    total += pieces[i].text.length;
    if (total > MAX_CHARS) return pieces.slice(i + 1);
  }
  return pieces;
}
