'use strict';
// The compiled addon (native/spawn/src/spawn.c); see index.d.ts for what it takes and returns.
module.exports = require('./build/Release/spawn.node');
