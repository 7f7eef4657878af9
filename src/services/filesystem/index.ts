import type { ServiceImpl } from '@connectrpc/connect';
import { Filesystem } from '../../gen/filesystem/filesystem_pb.js';
import type { ServiceDeps } from '../context.js';
import { FilesystemContext } from './context.js';
import { listDir } from './list-dir.js';
import { makeDir } from './make-dir.js';
import { move } from './move.js';
import { PollWatchers } from './poll-watchers.js';
import { remove } from './remove.js';
import { stat } from './stat.js';
import { watchDir } from './watch-dir.js';

/** The `filesystem.Filesystem` service: every envd method. */
export function filesystemService(deps: ServiceDeps): Partial<ServiceImpl<typeof Filesystem>> {
  const fs = new FilesystemContext(deps);
  const pollWatchers = new PollWatchers(fs);
  return {
    stat: (req, ctx) => stat(fs, req, ctx),
    makeDir: (req, ctx) => makeDir(fs, req, ctx),
    move: (req, ctx) => move(fs, req, ctx),
    listDir: (req, ctx) => listDir(fs, req, ctx),
    remove: (req, ctx) => remove(fs, req, ctx),
    watchDir: (req, ctx) => watchDir(fs, req, ctx),
    createWatcher: (req, ctx) => pollWatchers.create(req, ctx),
    getWatcherEvents: (req) => pollWatchers.events(req),
    removeWatcher: (req) => pollWatchers.remove(req),
  };
}
