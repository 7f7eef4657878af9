// sendFile(): bytes of a file to a socket with sendfile(2), one copy inside the kernel (page cache →
// socket buffer), the way Go's net/http serves a file. Node has no sendfile, so its copy goes page
// cache → a buffer → the socket: twice the memory traffic and a read callback per chunk.
//
// Both descriptors are dup()ed at the call: Node may close its socket (client gone, server closing)
// or the file handle while a call runs, and a closed number can be reused at once by another open;
// the dups keep this transfer on the socket and file it started with. The socket's dup is a
// different fd number, so its uv_poll_t watcher never clashes with Node's own watcher on the socket.
//
// The loop: wait until the socket is writable (uv_poll_t on the dup), then one work item on the libuv
// thread pool calls sendfile until the socket buffer is full (EAGAIN) or PER_WORK bytes went, and
// back to the poll. sendfile reads the file synchronously, so on a cold file it blocks on the disk:
// never on the loop thread. A slow client costs no pool thread: it only keeps the poll waiting.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "napi-args.h"

// Bytes one work item sends at most before it hands the pool thread back (the socket may keep taking
// bytes as fast as a local client reads them; fs calls of other requests wait behind this one).
#define PER_WORK (2 * 1024 * 1024)

enum state { IDLE, POLLING, WORKING, FINISHED };

struct transfer;

// What the JS cancel function holds; outlives the transfer when the function is kept, and vice versa.
struct handle {
  struct transfer *t;
};

struct transfer {
  uv_poll_t poll;
  uv_work_t work;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  struct handle *handle;
  int out_fd, in_fd;
  off_t offset;
  int64_t remaining, sent;
  int work_err;  // the work item's result: 0 (PER_WORK sent), UV_EAGAIN, UV_EOF or -errno
  enum state state;
  bool cancelled, env_gone, poll_open;
};

static void close_fds(struct transfer *t) {
  if (t->out_fd >= 0) close(t->out_fd);
  if (t->in_fd >= 0) close(t->in_fd);
  t->out_fd = t->in_fd = -1;
}

static void free_transfer(struct transfer *t) {
  close_fds(t);
  free(t);
}

static void on_poll_closed(uv_handle_t *h) { free_transfer(h->data); }

static void env_cleanup(void *data);

// Drops everything but the JS callback; the struct goes once the poll handle is closed.
static void release(struct transfer *t) {
  t->state = FINISHED;
  if (t->handle) t->handle->t = NULL;
  t->handle = NULL;
  if (!t->env_gone) {
    napi_remove_env_cleanup_hook(t->env, env_cleanup, t);
    napi_delete_reference(t->env, t->callback);
    if (t->async) napi_async_destroy(t->env, t->async);
  }
  if (t->poll_open) {
    // uv_close takes the dup out of epoll at once, so the dups close now, before the JS callback runs
    // (the client sees the connection end as soon as Node closes its own descriptor); the memory waits
    // for the close callback.
    uv_close((uv_handle_t *)&t->poll, on_poll_closed);
    close_fds(t);
  } else {
    free_transfer(t);
  }
}

// A Node-style system error (code, errno, syscall 'sendfile'); NULL when it cannot be made.
static napi_value make_error(napi_env env, int err) {
  const char *code = uv_err_name(err);
  char msg[256];
  if (err == UV_EOF) snprintf(msg, sizeof msg, "sendfile: the file ended before the bytes asked for");
  else snprintf(msg, sizeof msg, "sendfile: %s %s", uv_strerror(err), code);
  napi_value jcode, jmsg, error, jerrno, jsyscall;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &error) != napi_ok || napi_create_int32(env, err, &jerrno) != napi_ok ||
      napi_create_string_utf8(env, "sendfile", NAPI_AUTO_LENGTH, &jsyscall) != napi_ok ||
      napi_set_named_property(env, error, "errno", jerrno) != napi_ok ||
      napi_set_named_property(env, error, "syscall", jsyscall) != napi_ok) {
    return NULL;
  }
  return error;
}

// The end: the callback gets (error or undefined, bytes sent), then the transfer is released.
static void finish(struct transfer *t, int err) {
  if (t->env_gone) {
    release(t);
    return;
  }
  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    release(t);
    return;
  }
  napi_value cb, recv, argv[2], ignored;
  if (napi_get_reference_value(env, t->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
      napi_create_double(env, (double)t->sent, &argv[1]) == napi_ok) {
    if (err == 0) napi_get_undefined(env, &argv[0]);
    else if (!(argv[0] = make_error(env, err))) napi_get_undefined(env, &argv[0]);
    // Released before the call: a callback that throws must not leave the dups open.
    napi_async_context async = t->async;
    t->async = NULL;
    release(t);
    if (napi_make_callback(env, async, recv, cb, 2, argv, &ignored) == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
    napi_async_destroy(env, async);
  } else {
    release(t);
  }
  napi_close_handle_scope(env, scope);
}

// On a pool thread: sendfile until the socket is full, the count is reached or PER_WORK went.
static void do_send(uv_work_t *work) {
  struct transfer *t = work->data;
  int64_t budget = PER_WORK;
  int err = 0;
  while (t->remaining > 0 && budget > 0) {
    size_t want = (size_t)(t->remaining < budget ? t->remaining : budget);
    ssize_t n = sendfile(t->out_fd, t->in_fd, &t->offset, want);
    if (n > 0) {
      t->remaining -= n;
      t->sent += n;
      budget -= n;
    } else if (n == 0) {
      err = UV_EOF;  // the file is shorter than when the count was taken
      break;
    } else if (errno != EINTR) {
      err = errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : -errno;
      break;
    }
  }
  t->work_err = err;
}

static void after_send(uv_work_t *work, int status);
static void on_writable(uv_poll_t *poll, int status, int events);

static void queue_send(struct transfer *t) {
  uv_loop_t *loop = t->poll.loop;
  t->state = WORKING;
  int r = uv_queue_work(loop, &t->work, do_send, after_send);
  if (r != 0) finish(t, r);
}

static void wait_writable(struct transfer *t) {
  t->state = POLLING;
  int r = uv_poll_start(&t->poll, UV_WRITABLE, on_writable);
  if (r != 0) finish(t, r);
}

static void after_send(uv_work_t *work, int status) {
  struct transfer *t = work->data;
  t->state = IDLE;
  if (t->env_gone) release(t);
  else if (t->cancelled) finish(t, UV_ECANCELED);
  else if (status != 0) finish(t, status);
  else if (t->remaining == 0) finish(t, 0);
  else if (t->work_err == UV_EAGAIN) wait_writable(t);
  else if (t->work_err == 0) queue_send(t);
  else finish(t, t->work_err);
}

static void on_writable(uv_poll_t *poll, int status, int events) {
  (void)events;
  struct transfer *t = poll->data;
  uv_poll_stop(poll);
  // A hang-up or error: the next sendfile reports it (EPIPE, ECONNRESET) with its errno.
  if (status < 0) finish(t, status);
  else queue_send(t);
}

static void cancel_transfer(struct transfer *t) {
  if (!t || t->state == FINISHED) return;
  t->cancelled = true;
  if (t->state == POLLING) {
    uv_poll_stop(&t->poll);
    finish(t, UV_ECANCELED);
  }
  // WORKING: after_send sees the flag once the current call returns (a short one: non-blocking socket).
}

static void env_cleanup(void *data) {
  struct transfer *t = data;
  // The environment is going away: no callback; the struct goes now, or after its work item.
  t->env_gone = true;
  napi_delete_reference(t->env, t->callback);
  if (t->async) napi_async_destroy(t->env, t->async);
  t->async = NULL;
  if (t->state == POLLING) uv_poll_stop(&t->poll);
  if (t->state != WORKING) release(t);
}

static napi_value cancel(napi_env env, napi_callback_info info) {
  struct handle *h = NULL;
  if (napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&h) == napi_ok && h) cancel_transfer(h->t);
  return NULL;
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct handle *h = data;
  if (h->t) h->t->handle = NULL;
  free(h);
}

// A non-negative integer a double holds exactly.
static bool get_int64(napi_env env, napi_value v, int64_t *out) { return sandboxd_get_int(env, v, 0, 9007199254740991, out); }

/*
 * sendFile(socketFd, fileFd, offset, count, onDone) → cancel: see index.d.ts.
 */
static napi_value send_file(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok) return NULL;
  int64_t out_fd, in_fd, offset, count;
  napi_valuetype type = napi_undefined;
  if (argc == 5) napi_typeof(env, args[4], &type);
  if (argc != 5 || !get_int64(env, args[0], &out_fd) || !get_int64(env, args[1], &in_fd) || out_fd > INT32_MAX || in_fd > INT32_MAX ||
      !get_int64(env, args[2], &offset) || !get_int64(env, args[3], &count) || type != napi_function) {
    napi_throw_type_error(env, NULL, "sendFile(socketFd, fileFd, offset, count, onDone) takes two descriptors, two non-negative integers and a function");
    return NULL;
  }
  struct transfer *t = calloc(1, sizeof *t);
  struct handle *h = calloc(1, sizeof *h);
  if (!t || !h) {
    free(t);
    free(h);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  t->env = env;
  t->offset = (off_t)offset;
  t->remaining = count;
  t->out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 0);
  t->in_fd = t->out_fd < 0 ? -1 : fcntl(in_fd, F_DUPFD_CLOEXEC, 0);
  int err = t->out_fd < 0 || t->in_fd < 0 ? -errno : 0;
  uv_loop_t *loop = NULL;
  napi_value resource, name, fn;
  if (!err && napi_get_uv_event_loop(env, &loop) != napi_ok) err = UV_EINVAL;
  // uv_poll_init also makes the socket non-blocking (it is already: Node's own).
  if (!err) err = uv_poll_init(loop, &t->poll, t->out_fd);
  if (err) {
    free(h);
    free_transfer(t);
    napi_value e = make_error(env, err);
    if (e) napi_throw(env, e);
    else napi_throw_error(env, NULL, "sendfile: could not start");
    return NULL;
  }
  t->poll_open = true;
  t->poll.data = t;
  t->work.data = t;
  bool h_owned = false;  // by the cancel function's finalizer
  if (napi_create_reference(env, args[4], 1, &t->callback) != napi_ok || napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "sandboxd:sendfile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, resource, name, &t->async) != napi_ok ||
      napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, cancel, h, &fn) != napi_ok ||
      !(h_owned = napi_add_finalizer(env, fn, h, handle_finalize, NULL, NULL) == napi_ok) ||
      napi_add_env_cleanup_hook(env, env_cleanup, t) != napi_ok) {
    if (t->callback) napi_delete_reference(env, t->callback);
    if (t->async) napi_async_destroy(env, t->async);
    t->async = NULL;
    t->env_gone = true;  // no cleanup hook to remove, no callback to call
    if (!h_owned) free(h);
    release(t);
    napi_throw_error(env, NULL, "sendfile: N-API call failed");
    return NULL;
  }
  h->t = t;
  t->handle = h;
  // Straight to a work item: a fresh response's socket buffer is empty.
  queue_send(t);
  return fn;
}

napi_status sandboxd_sendfile_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_status s = napi_create_function(env, "sendFile", NAPI_AUTO_LENGTH, send_file, NULL, &fn);
  return s == napi_ok ? napi_set_named_property(env, exports, "sendFile", fn) : s;
}
