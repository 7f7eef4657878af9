// The loader hook of stage2-gate.mjs (it runs on the loader's own thread).
import { existsSync } from 'node:fs';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';

const GATE = process.env.SANDBOXD_TEST_STAGE2_GATE;

export async function load(url, context, next) {
  if (GATE && /\/dist\/run-[A-Za-z0-9]+\.js$/.test(url)) while (!existsSync(GATE)) await sleep(5);
  return next(url, context);
}
