// Directory watching on inotify directly, for the daemon's watchers (src/services/filesystem/watcher.ts).
//
// Node's fs.watch reports only 'rename' or 'change' per event, so the daemon had to lstat each path
// to tell a create from a remove and a chmod from a write, and to guess which two names made a move.
// Here the inotify fd is polled on the loop (uv_poll_t) and every readable turn reads the queue in
// batches and hands JS one flat array per batch: wd, mask, cookie, name for each event, exactly as the
// kernel wrote them (IN_CREATE, IN_MODIFY, IN_ATTRIB, IN_DELETE, IN_MOVED_FROM/TO with their cookie,
// IN_DELETE_SELF, IN_MOVE_SELF, IN_IGNORED, IN_Q_OVERFLOW), as fsnotify reads them for envd.
//
// One fd per open(): the watcher adds and removes its directories' watches on it and closes it. The
// poll handle is unref'd (like fs.watch with persistent: false): a watch never keeps the loop alive.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "inotify.h"

// What fsnotify asks for (envd's events), IN_ONLYDIR so a path that is no longer a directory fails.
#define WATCH_MASK                                                                                             \
  (IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | \
   IN_ONLYDIR)

// One read(2): room for 64 events with the longest names; a turn reads at most READS_PER_TURN of them,
// so a burst cannot hold the loop (the poll is level-triggered: the rest is read on the next turn).
#define READ_BUFFER (64 * (sizeof(struct inotify_event) + NAME_MAX + 1))
#define READS_PER_TURN 16

struct inotify_handle {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  int open;       // the poll runs and the fd is ours
  int finalized;  // the JS object is gone
  int released;   // the uv handle is closed
  char buffer[READ_BUFFER] __attribute__((aligned(__alignof__(struct inotify_event))));
};

// The struct outlives both the JS object (it may be closed while referenced) and the uv handle.
static void maybe_free(struct inotify_handle *h) {
  if (h->finalized && h->released) free(h);
}

static void on_closed(uv_handle_t *handle) {
  struct inotify_handle *h = handle->data;
  close(h->fd);
  h->released = 1;
  maybe_free(h);
}

static void env_cleanup(void *data);

// Stops the poll and closes the fd (once uv has closed the handle); the struct lives until finalized.
static void shut(struct inotify_handle *h) {
  if (!h->open) return;
  h->open = 0;
  napi_remove_env_cleanup_hook(h->env, env_cleanup, h);
  napi_delete_reference(h->env, h->callback);
  napi_async_destroy(h->env, h->async);
  uv_poll_stop(&h->poll);
  uv_close((uv_handle_t *)&h->poll, on_closed);
}

static void env_cleanup(void *data) {
  struct inotify_handle *h = data;
  if (!h->open) return;
  h->open = 0;
  uv_poll_stop(&h->poll);
  uv_close((uv_handle_t *)&h->poll, on_closed);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct inotify_handle *h = data;
  h->finalized = 1;
  if (h->open) shut(h);
  else maybe_free(h);
}

static napi_value errno_error(napi_env env, int err, const char *syscall, const char *path) {
  char msg[PATH_MAX + 128];
  // Node's words for the watch limit (fs.watch says the same), libuv's for the rest.
  const char *what = err == ENOSPC ? "System limit for number of file watchers reached" : uv_strerror(-err);
  snprintf(msg, sizeof msg, "%s: %s, %s%s%s%s", uv_err_name(-err), what, syscall, path ? " '" : "", path ? path : "", path ? "'" : "");
  napi_value code, message, error, v;
  napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &v);
  napi_set_named_property(env, error, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "syscall", v);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, error, "path", v);
  }
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  napi_throw(env, errno_error(env, err, syscall, path));
  return NULL;
}

// Reads what the queue holds into one array and calls JS with it; an error ends the watch ([-errno]).
static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  struct inotify_handle *h = poll->data;
  napi_env env = h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value list;
  uint32_t n = 0;
  int failure = status < 0 ? -status : 0;
  napi_create_array(env, &list);
  for (int reads = 0; !failure && reads < READS_PER_TURN; reads++) {
    ssize_t got = read(h->fd, h->buffer, sizeof h->buffer);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) failure = errno;
      break;
    }
    for (char *p = h->buffer; p < h->buffer + got;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      napi_value wd, mask, cookie, name;
      napi_create_int32(env, ev->wd, &wd);
      napi_create_uint32(env, ev->mask, &mask);
      napi_create_uint32(env, ev->cookie, &cookie);
      napi_create_string_utf8(env, ev->len ? ev->name : "", ev->len ? strnlen(ev->name, ev->len) : 0, &name);
      napi_set_element(env, list, n++, wd);
      napi_set_element(env, list, n++, mask);
      napi_set_element(env, list, n++, cookie);
      napi_set_element(env, list, n++, name);
      p += sizeof(struct inotify_event) + ev->len;
    }
    if ((size_t)got < sizeof h->buffer - (sizeof(struct inotify_event) + NAME_MAX + 1)) break;  // drained
  }
  if (failure) {
    napi_value e;
    napi_create_int32(env, -failure, &e);
    napi_set_element(env, list, n++, e);
    uv_poll_stop(poll);
  }
  if (n > 0) {
    napi_value cb, recv, result;
    if (napi_get_reference_value(env, h->callback, &cb) == napi_ok && cb && napi_get_global(env, &recv) == napi_ok) {
      if (napi_make_callback(env, h->async, recv, cb, 1, &list, &result) == napi_pending_exception) {
        napi_value exc;
        if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

static struct inotify_handle *unwrap(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "not an inotify handle");
    return NULL;
  }
  return data;
}

// inotifyOpen(onEvents): a new inotify fd polled on the loop.
static napi_value inotify_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, name;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok ||
      type != napi_function) {
    napi_throw_type_error(env, NULL, "inotifyOpen(onEvents) needs a function");
    return NULL;
  }
  struct inotify_handle *h = calloc(1, sizeof *h);
  if (!h) return throw_errno(env, ENOMEM, "inotify_init1", NULL);
  h->env = env;
  h->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (h->fd < 0) {
    int err = errno;
    free(h);
    return throw_errno(env, err, "inotify_init1", NULL);
  }
  uv_loop_t *loop;
  int r;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || (r = uv_poll_init(loop, &h->poll, h->fd)) != 0) {
    close(h->fd);
    free(h);
    return throw_errno(env, EINVAL, "uv_poll_init", NULL);
  }
  h->poll.data = h;
  h->open = 1;
  h->released = 0;
  napi_create_string_utf8(env, "sandboxd:inotify", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[0], 1, &h->callback) != napi_ok || napi_async_init(env, NULL, name, &h->async) != napi_ok ||
      napi_add_env_cleanup_hook(env, env_cleanup, h) != napi_ok || napi_create_external(env, h, finalize, NULL, &out) != napi_ok) {
    h->open = 0;
    uv_close((uv_handle_t *)&h->poll, on_closed);  // frees nothing: finalized stays 0, so h leaks (out of memory anyway)
    napi_throw_error(env, NULL, "inotifyOpen: out of memory");
    return NULL;
  }
  if ((r = uv_poll_start(&h->poll, UV_READABLE, on_readable)) != 0) {
    shut(h);
    return throw_errno(env, -r, "uv_poll_start", NULL);
  }
  uv_unref((uv_handle_t *)&h->poll);
  return out;
}

// inotifyAdd(handle, path): the watch descriptor of a directory (the same one again for the same inode).
static napi_value inotify_add(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "inotifyAdd(handle, path)");
    return NULL;
  }
  struct inotify_handle *h = unwrap(env, argv[0]);
  if (!h) return NULL;
  char path[PATH_MAX];
  size_t len;
  if (napi_get_value_string_utf8(env, argv[1], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "inotifyAdd: the path must be a string");
    return NULL;
  }
  if (len >= sizeof path - 1) return throw_errno(env, ENAMETOOLONG, "inotify_add_watch", path);
  if (!h->open) return throw_errno(env, EBADF, "inotify_add_watch", path);
  int wd = inotify_add_watch(h->fd, path, WATCH_MASK);
  if (wd < 0) return throw_errno(env, errno, "inotify_add_watch", path);
  napi_create_int32(env, wd, &out);
  return out;
}

// inotifyRemove(handle, wd): drops a watch; one already gone (its directory removed) is no error.
static napi_value inotify_remove(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t wd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_value_int32(env, argv[1], &wd) != napi_ok) {
    napi_throw_type_error(env, NULL, "inotifyRemove(handle, wd)");
    return NULL;
  }
  struct inotify_handle *h = unwrap(env, argv[0]);
  if (!h) return NULL;
  if (h->open && inotify_rm_watch(h->fd, wd) < 0 && errno != EINVAL) return throw_errno(env, errno, "inotify_rm_watch", NULL);
  return NULL;
}

// inotifyClose(handle): stops reading and closes the fd (and with it every watch); idempotent.
static napi_value inotify_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "inotifyClose(handle)");
    return NULL;
  }
  struct inotify_handle *h = unwrap(env, argv[0]);
  if (h) shut(h);
  return NULL;
}

napi_status inotify_exports(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"inotifyOpen", inotify_open}, {"inotifyAdd", inotify_add}, {"inotifyRemove", inotify_remove}, {"inotifyClose", inotify_close}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    napi_status s = napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
    if (s == napi_ok) s = napi_set_named_property(env, exports, fns[i].name, fn);
    if (s != napi_ok) return s;
  }
  return napi_ok;
}
