import { describe, expect, it } from '@jest/globals';
import {
  canChangeTaskFlag,
  canChangeWorkflowFlag,
  canTransitionTask,
  canTransitionWorkflow,
  isTerminalTask,
  TASK_STATES,
  taskSourcesOf,
} from './states.js';

describe('task state machine', () => {
  it('allows the lifecycle of DESIGN.md and nothing out of terminal states but a rerun and what it revives', () => {
    expect(canTransitionTask('WAITING', 'READY')).toBe(true);
    expect(canTransitionTask('READY', 'RUNNING')).toBe(true);
    expect(canTransitionTask('RUNNING', 'SUCCESS')).toBe(true);
    expect(canTransitionTask('RUNNING', 'READY')).toBe(true); // retry
    expect(canTransitionTask('ERROR', 'READY')).toBe(true); // rerun
    expect(canTransitionTask('WAITING', 'RUNNING')).toBe(false);
    expect(canTransitionTask('SUCCESS', 'READY')).toBe(false);
    for (const from of ['SUCCESS', 'CANCELLED'] as const) {
      for (const to of TASK_STATES) expect(canTransitionTask(from, to)).toBe(false);
    }
    // A task skipped because of a failure waits again when that failure is rerun.
    expect(TASK_STATES.filter((to) => canTransitionTask('SKIPPED', to))).toEqual(['WAITING']);
  });

  it('lists where a state can be reached from', () => {
    expect(taskSourcesOf('RUNNING')).toEqual(['READY']);
    expect(taskSourcesOf('SKIPPED').sort()).toEqual(['READY', 'WAITING']);
  });

  it('knows terminal states', () => {
    expect(TASK_STATES.filter(isTerminalTask)).toEqual(['SUCCESS', 'ERROR', 'CANCELLED', 'SKIPPED']);
  });
});

describe('workflow state machine', () => {
  it('pauses and resumes, and ends from either', () => {
    expect(canTransitionWorkflow('RUNNING', 'PAUSED')).toBe(true);
    expect(canTransitionWorkflow('PAUSED', 'RUNNING')).toBe(true);
    expect(canTransitionWorkflow('PAUSED', 'CANCELLED')).toBe(true);
    expect(canTransitionWorkflow('SUCCESS', 'RUNNING')).toBe(false);
    expect(canTransitionWorkflow('ERROR', 'PAUSED')).toBe(false);
  });
});

describe('side flags', () => {
  it('change only in the states the table lists', () => {
    expect(canChangeTaskFlag('handling', 'ERROR', 'ERROR')).toBe(true);
    expect(canChangeTaskFlag('handling', 'RUNNING', 'RUNNING')).toBe(false);
    expect(canChangeTaskFlag('cancel_requested', 'RUNNING', 'RUNNING')).toBe(true);
    expect(canChangeTaskFlag('cancel_requested', 'WAITING', 'WAITING')).toBe(false);
    expect(canChangeTaskFlag('cancel_requested', 'READY', 'RUNNING')).toBe(true); // reset by a new lease
    expect(canChangeTaskFlag('handled', 'ERROR', 'READY')).toBe(true); // reset by a rerun
    expect(canChangeWorkflowFlag('sealed', 'RUNNING')).toBe(true);
    expect(canChangeWorkflowFlag('rollback_started', 'SUCCESS')).toBe(false);
  });
});
