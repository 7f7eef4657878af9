// writeSmallFile(): a small upload's whole landing in one thread-pool hop. The bytes are already in
// memory; open(O_EXCL) of the temporary name, fchown, fchmod, write, rename over the target and
// close run on a pool thread, one after the other, instead of as five hops (each a promise, a worker
// wake-up and a completion) or as synchronous calls on the loop, where a rename over an old file
// (freeing its inode, ext4 starting the new bytes' writeback) blocked the loop for 100–200 µs.
// On any failure after the open the temporary file is closed and unlinked: nothing is left behind.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "napi-args.h"

// Bytes taken at most: the JavaScript side sends only files that ended within 64 KiB.
#define MAX_BYTES (1024 * 1024)

struct job {
  napi_async_work work;
  napi_ref callback;
  char *tmp, *dest;
  char *data;
  size_t len;
  int64_t uid, gid, mode, create_mode;
  int err;              // 0, -errno, or UV_EOF (a write that took nothing)
  const char *syscall;  // the step that failed
};

static void free_job(napi_env env, struct job *j) {
  if (j->callback) napi_delete_reference(env, j->callback);
  if (j->work) napi_delete_async_work(env, j->work);
  free(j->tmp);
  free(j->dest);
  free(j->data);
  free(j);
}

// On a pool thread.
static void execute(napi_env env, void *data) {
  (void)env;
  struct job *j = data;
  int fd = open(j->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)j->create_mode);
  if (fd < 0) {
    j->err = -errno;
    j->syscall = "open";
    return;
  }
  if (fchown(fd, (uid_t)j->uid, (gid_t)j->gid) != 0) {
    j->err = -errno;
    j->syscall = "fchown";
  } else if (j->mode >= 0 && fchmod(fd, (mode_t)j->mode) != 0) {
    // After fchown, which clears set-id bits, so they survive an overwrite too.
    j->err = -errno;
    j->syscall = "fchmod";
  }
  size_t off = 0;
  while (!j->err && off < j->len) {
    ssize_t n = write(fd, j->data + off, j->len - off);
    if (n > 0) {
      off += (size_t)n;
    } else if (n == 0) {
      j->err = UV_EOF;
      j->syscall = "write";
    } else if (errno != EINTR) {
      j->err = -errno;
      j->syscall = "write";
    }
  }
  if (!j->err && rename(j->tmp, j->dest) != 0) {
    j->err = -errno;
    j->syscall = "rename";
  }
  close(fd);
  if (j->err) unlink(j->tmp);
}

static napi_value make_error(napi_env env, struct job *j) {
  const char *code = j->err == UV_EOF ? "EOF" : uv_err_name(j->err);
  char msg[512];
  if (j->err == UV_EOF) snprintf(msg, sizeof msg, "the file takes no more bytes, %s '%s'", j->syscall, j->tmp);
  else snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, uv_strerror(j->err), j->syscall, strcmp(j->syscall, "rename") == 0 ? j->dest : j->tmp);
  napi_value jcode, jmsg, error, jerrno, jsyscall, jpath;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok || napi_create_error(env, jcode, jmsg, &error) != napi_ok ||
      napi_create_int32(env, j->err, &jerrno) != napi_ok || napi_create_string_utf8(env, j->syscall, NAPI_AUTO_LENGTH, &jsyscall) != napi_ok ||
      napi_create_string_utf8(env, j->tmp, NAPI_AUTO_LENGTH, &jpath) != napi_ok ||
      napi_set_named_property(env, error, "code", jcode) != napi_ok || napi_set_named_property(env, error, "errno", jerrno) != napi_ok ||
      napi_set_named_property(env, error, "syscall", jsyscall) != napi_ok || napi_set_named_property(env, error, "path", jpath) != napi_ok) {
    return NULL;
  }
  return error;
}

// On the loop: onDone(error or undefined).
static void complete(napi_env env, napi_status status, void *data) {
  struct job *j = data;
  napi_value cb, recv, arg, ignored;
  if (status == napi_cancelled) {
    j->err = UV_ECANCELED;
    j->syscall = "open";
  }
  if (napi_get_reference_value(env, j->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    if (!j->err || !(arg = make_error(env, j))) napi_get_undefined(env, &arg);
    if (napi_call_function(env, recv, cb, 1, &arg, &ignored) == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  free_job(env, j);
}

// A path: a string without a NUL in it (one would name another file).
static char *get_path(napi_env env, napi_value v) {
  size_t len;
  char *s = sandboxd_get_string(env, v, &len);
  if (s && strlen(s) != len) {
    free(s);
    return NULL;
  }
  return s;
}

// The chunks (an array of Buffers) copied into one allocation: the job must not hold JS memory.
static bool get_chunks(napi_env env, napi_value arr, struct job *j) {
  bool is_array;
  uint32_t n;
  if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array || napi_get_array_length(env, arr, &n) != napi_ok) return false;
  size_t total = 0;
  for (int pass = 0; pass < 2; pass++) {
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
      napi_value el;
      bool is_buffer;
      void *p;
      size_t len;
      if (napi_get_element(env, arr, i, &el) != napi_ok || napi_is_buffer(env, el, &is_buffer) != napi_ok || !is_buffer ||
          napi_get_buffer_info(env, el, &p, &len) != napi_ok) {
        return false;
      }
      if (pass == 0) {
        total += len;
        if (total > MAX_BYTES) return false;
      } else if (len > 0) {
        memcpy(j->data + off, p, len);
        off += len;
      }
    }
    if (pass == 0) {
      j->data = malloc(total > 0 ? total : 1);
      if (!j->data) return false;
      j->len = total;
    }
  }
  return true;
}

/*
 * writeSmallFile(tmp, dest, uid, gid, mode, createMode, chunks, onDone): see index.d.ts.
 */
static napi_value write_small_file(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value args[8];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok) return NULL;
  struct job *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_valuetype type = napi_undefined;
  if (argc == 8) napi_typeof(env, args[7], &type);
  if (argc != 8 || !(j->tmp = get_path(env, args[0])) || !(j->dest = get_path(env, args[1])) ||
      !sandboxd_get_int(env, args[2], 0, UINT32_MAX, &j->uid) || !sandboxd_get_int(env, args[3], 0, UINT32_MAX, &j->gid) ||
      !sandboxd_get_int(env, args[4], -1, 07777, &j->mode) || !sandboxd_get_int(env, args[5], 0, 07777, &j->create_mode) || !get_chunks(env, args[6], j) ||
      type != napi_function) {
    free_job(env, j);
    napi_throw_type_error(env, NULL,
                          "writeSmallFile(tmp, dest, uid, gid, mode, createMode, chunks, onDone) takes two paths, ids, modes (-1: none), at most "
                          "1 MiB of Buffers and a function");
    return NULL;
  }
  napi_value name;
  if (napi_create_reference(env, args[7], 1, &j->callback) != napi_ok ||
      napi_create_string_utf8(env, "sandboxd:writeSmallFile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    free_job(env, j);
    napi_throw_error(env, NULL, "writeSmallFile: N-API call failed");
    return NULL;
  }
  return NULL;
}

napi_status sandboxd_writefile_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_status s = napi_create_function(env, "writeSmallFile", NAPI_AUTO_LENGTH, write_small_file, NULL, &fn);
  return s == napi_ok ? napi_set_named_property(env, exports, "writeSmallFile", fn) : s;
}
