// `node --import test/helpers/stage2-gate.mjs dist/main.js …`: the daemon's second stage (dist/run-*.js, which
// src/main.ts imports once its ports listen) is held until the file SANDBOXD_TEST_STAGE2_GATE exists, so a test
// can send requests while only the first stage runs. Test tooling only: the daemon knows nothing of it.
import { register } from 'node:module';

register('./stage2-gate-hooks.mjs', import.meta.url);
