import { describe, expect, it } from 'vitest';
import { exitInfo, signalText } from '../../../../src/services/process/status.js';

describe('exitInfo', () => {
  it('reports a clean exit without an error', () => {
    expect(exitInfo(0, null)).toEqual({ exitCode: 0, exited: true, status: 'exit status 0' });
  });

  it('reports a non-zero exit with the status as the error, as envd', () => {
    expect(exitInfo(3, null)).toEqual({ exitCode: 3, exited: true, status: 'exit status 3', error: 'exit status 3' });
  });

  it('reports a killed process with exit code -1 and Go signal wording', () => {
    expect(exitInfo(null, 'SIGKILL')).toEqual({ exitCode: -1, exited: false, status: 'signal: killed', error: 'signal: killed' });
    expect(exitInfo(null, 'SIGTERM').status).toBe('signal: terminated');
    expect(exitInfo(0, 15).status).toBe('signal: terminated');
  });

  it('treats node-pty signal 0 as no signal', () => {
    expect(exitInfo(2, 0).status).toBe('exit status 2');
  });

  it('names unknown signals by number', () => {
    expect(signalText(40)).toBe('signal 40');
  });
});
