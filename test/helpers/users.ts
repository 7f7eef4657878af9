import { execFileSync } from 'node:child_process';

/**
 * Ensures the SDK's default user `user` exists, in the group `sbxtestgrp` besides its own, so that a
 * test can tell supplementary groups were set (root only: useradd, groupadd, usermod).
 */
export function ensureTestUserWithGroup(): void {
  try {
    execFileSync('id', ['user'], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', '-s', '/bin/bash', 'user']);
  }
  execFileSync('groupadd', ['-f', 'sbxtestgrp']);
  execFileSync('usermod', ['-aG', 'sbxtestgrp', 'user']);
}
