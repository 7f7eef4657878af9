// sandboxd's child spawn, the way Go's os/exec starts a process on Linux.
//
// Node's child_process forks the whole daemon (libuv: plain fork), blocks its event loop until the
// child has exec'd, and leaves every writable page of the daemon copy-on-write afterwards; the cost
// grows with the daemon's heap. Here the child shares the parent's memory (CLONE_VM) and the parent
// thread sleeps until the child has exec'd or failed (CLONE_VFORK): no page tables are copied. In
// between, on its own small stack, the child does what sandboxd needs and Node cannot do at all:
// signals back to their defaults, setsid, oom_score_adj, its cgroup, nice, supplementary groups,
// gid, uid, cwd, stdio, then execve. So one exec starts the program, no /bin/sh, nice or setpriv.
//
// Rules for the child (it runs in the parent's address space, beside the parent's other threads):
// only async-signal-safe calls, no allocation, nothing written but the shared `struct child` (its
// result) and its own stack; everything it needs is built by the parent before the clone. Calls
// that glibc broadcasts to every thread of the process (setuid, setgid, setgroups) are raw syscalls.
//
// The exit: the pidfd CLONE_PIDFD returns is polled on the loop (uv_poll_t); when it is readable the
// child is reaped with waitid(P_PIDFD) and the JS callback gets (code, signal). libuv's SIGCHLD
// handler reaps only the pids of its own uv_process_t handles, so it never takes these children.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "inotify.h"
#include "napi-args.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

// The child's stack: it runs a few frames of plain C (no lazy binding: the addon links with -z now).
#define CHILD_STACK (64 * 1024)

// What the child was doing when it failed; the parent names it in the error.
enum step {
  STEP_NONE = 0,
  STEP_SIGACTION,
  STEP_SETSID,
  STEP_SETGROUPS,
  STEP_SETGID,
  STEP_SETUID,
  STEP_CHDIR,
  STEP_DUP2,
  STEP_CLOSE_RANGE,
  STEP_SIGMASK,
  STEP_EXEC,
};

static const char *const STEP_NAMES[] = {
  "", "sigaction", "setsid", "setgroups", "setgid", "setuid", "chdir", "dup2", "close_range", "sigprocmask", "execve",
};

// Best-effort steps, as the /bin/sh prelude they replace: a failure is reported, not fatal.
enum warning { WARN_OOM = 1, WARN_CGROUP = 2, WARN_NICE = 4 };

struct child {
  // Set by the parent before the clone.
  const char *file;
  char *const *argv;
  char *const *sh_argv;  // {"/bin/sh", file, argv[1..]}: how execvp runs a file without a #! line
  char *const *envp;
  const char *cwd;
  int stdio[3];          // the child's ends, all >= 3 and close-on-exec
  int setsid;
  int set_ids;
  uid_t uid;
  gid_t gid;
  size_t ngroups;
  const gid_t *groups;
  int set_nice;
  int nice;
  const char *oom;       // the value for /proc/self/oom_score_adj, or NULL
  size_t oom_len;
  const char *cgroup_procs;  // the cgroup.procs file to join, or NULL
  // Written by the child.
  volatile int err;
  volatile int step;
  volatile int warnings;
  volatile int warn_errno[3];
};

static int fail(struct child *c, int step) {
  c->err = errno;
  c->step = step;
  _exit(127);
}

// Writes `len` bytes of `value` to an existing file; 0 or an errno.
static int write_file(const char *path, const char *value, size_t len) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, value, len);
  int err = n < 0 ? errno : (size_t)n != len ? EIO : 0;
  if (close(fd) < 0 && err == 0) err = errno;
  return err;
}

static void warn(struct child *c, int which, int index, int err) {
  c->warnings |= which;
  c->warn_errno[index] = err;
}

static int child_main(void *arg) {
  struct child *c = arg;
  // Handlers the parent installed (libuv's, Node's) must never run here, in the parent's memory:
  // every signal stays blocked (the parent blocked them before the clone) until all are default.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    // glibc reserves two real-time signals for itself (EINVAL); the rest must succeed.
    if (sigaction(sig, &dfl, NULL) < 0 && errno != EINVAL) fail(c, STEP_SIGACTION);
  }
  if (c->setsid && setsid() < 0) fail(c, STEP_SETSID);
  // Root-only steps first, while the child still is root.
  if (c->oom) {
    int err = write_file("/proc/self/oom_score_adj", c->oom, c->oom_len);
    if (err) warn(c, WARN_OOM, 0, err);
  }
  if (c->cgroup_procs) {
    // "0" names the writer itself (cgroup_procs_write_start).
    int err = write_file(c->cgroup_procs, "0", 1);
    if (err) warn(c, WARN_CGROUP, 1, err);
  }
  if (c->set_nice && setpriority(PRIO_PROCESS, 0, c->nice) < 0) warn(c, WARN_NICE, 2, errno);
  if (c->set_ids) {
    if (syscall(SYS_setgroups, c->ngroups, c->groups) < 0) fail(c, STEP_SETGROUPS);
    if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0) fail(c, STEP_SETGID);
    if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0) fail(c, STEP_SETUID);
  }
  if (c->cwd && chdir(c->cwd) < 0) fail(c, STEP_CHDIR);
  // dup2 clears close-on-exec on the copy; the originals (>= 3) keep it and go at exec.
  for (int fd = 0; fd < 3; fd++) {
    if (dup2(c->stdio[fd], fd) < 0) fail(c, STEP_DUP2);
  }
  // Whatever the daemon inherited without close-on-exec stays out of the child too.
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0 && errno != ENOSYS && errno != EINVAL) fail(c, STEP_CLOSE_RANGE);
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) fail(c, STEP_SIGMASK);
  execve(c->file, c->argv, c->envp);
  if (errno == ENOEXEC) execve("/bin/sh", c->sh_argv, c->envp);
  return fail(c, STEP_EXEC);
}

// --- JS glue -------------------------------------------------------------------------------------

#define CHECK(env, call)                                              \
  do {                                                                \
    if ((call) != napi_ok) return throw_last(env, #call);             \
  } while (0)

static napi_value throw_last(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", what, info && info->error_message ? info->error_message : "N-API call failed");
    napi_throw_error(env, NULL, msg);
  }
  return NULL;
}

// A Node-style system error: message `spawn <file> ENOENT`, with code, errno (negative), syscall
// (the failed step) and path; NULL when it cannot be made.
static napi_value errno_error(napi_env env, int err, const char *step, const char *file) {
  const char *code = uv_err_name(-err);
  char msg[4200];
  if (strcmp(step, "execve") == 0) snprintf(msg, sizeof msg, "spawn %s %s", file, code);
  else snprintf(msg, sizeof msg, "spawn %s: %s %s", file, step, code);
  napi_value jcode, jmsg, error, jerrno, jsyscall, jpath;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &error) != napi_ok ||
      napi_create_int32(env, -err, &jerrno) != napi_ok ||
      napi_create_string_utf8(env, step, NAPI_AUTO_LENGTH, &jsyscall) != napi_ok ||
      napi_create_string_utf8(env, file, NAPI_AUTO_LENGTH, &jpath) != napi_ok ||
      napi_set_named_property(env, error, "errno", jerrno) != napi_ok ||
      napi_set_named_property(env, error, "syscall", jsyscall) != napi_ok ||
      napi_set_named_property(env, error, "path", jpath) != napi_ok) {
    return NULL;
  }
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *step, const char *file) {
  napi_value error = errno_error(env, err, step, file);
  if (error) napi_throw(env, error);
  else throw_last(env, "creating the spawn error");
  return NULL;
}

// A plain Error with `message`, for failures that are not the child's (NULL when it cannot be made).
static napi_value plain_error(napi_env env, const char *message) {
  napi_value msg, error;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok || napi_create_error(env, NULL, msg, &error) != napi_ok) return NULL;
  return error;
}

// One running child: its pidfd polled on the loop until it exits.
struct watcher {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int pidfd;
  pid_t pid;
  struct watcher *prev, *next;
  struct instance *owner;
};

// Per environment (main thread or worker): the live watchers, closed if the environment goes first.
struct instance {
  struct watcher *watchers;
};

static void unlink_watcher(struct watcher *w) {
  if (w->prev) w->prev->next = w->next;
  else w->owner->watchers = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = NULL;
}

static void on_closed(uv_handle_t *handle) {
  struct watcher *w = handle->data;
  close(w->pidfd);
  free(w);
}

static void release(struct watcher *w) {
  unlink_watcher(w);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->async);
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

static void on_exit_ready(uv_poll_t *handle, int status, int events) {
  (void)events;
  struct watcher *w = handle->data;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  int code = status, signal = 0;
  if (status == 0) {
    int r;
    do r = waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &info, WEXITED | WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0 && info.si_pid == 0) return;  // not exited yet: keep polling
    if (r < 0) {
      code = -errno;  // the child is gone without a status for us (ECHILD): report it as an odd exit
    } else if (info.si_code == CLD_EXITED) {
      code = info.si_status;
    } else {
      code = -1;
      signal = info.si_status;
    }
  }
  uv_poll_stop(handle);
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    release(w);
    return;
  }
  napi_value cb, recv, argv[2], result;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, code, &argv[0]) == napi_ok && napi_create_int32(env, signal, &argv[1]) == napi_ok) {
    if (napi_make_callback(env, w->async, recv, cb, 2, argv, &result) == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  release(w);
  napi_close_handle_scope(env, scope);
}

static void instance_cleanup(void *data) {
  struct instance *inst = data;
  // The environment is going away: stop watching; the children are left to whoever reaps orphans.
  while (inst->watchers) {
    struct watcher *w = inst->watchers;
    unlink_watcher(w);
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_closed);
  }
  free(inst);
}

// Reads an array of strings into a NULL-terminated vector of malloc'd copies (one block).
static char **string_vector(napi_env env, napi_value array, size_t lead, uint32_t *count) {
  uint32_t n;
  if (napi_get_array_length(env, array, &n) != napi_ok) return NULL;
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len;
    if (napi_get_element(env, array, i, &v) != napi_ok || napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
    total += len + 1;
  }
  char **vec = malloc((lead + n + 1) * sizeof(char *) + total);
  if (!vec) return NULL;
  char *p = (char *)(vec + lead + n + 1);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len;
    napi_get_element(env, array, i, &v);
    napi_get_value_string_utf8(env, v, p, total, &len);
    vec[lead + i] = p;
    p += len + 1;
    total -= len + 1;
  }
  vec[lead + n] = NULL;
  *count = n;
  return vec;
}

static int get_prop(napi_env env, napi_value obj, const char *name, napi_value *out, napi_valuetype *type) {
  if (napi_get_named_property(env, obj, name, out) != napi_ok) return -1;
  return napi_typeof(env, *out, type) == napi_ok ? 0 : -1;
}

// An fd >= 3 and close-on-exec for the child's end of a pipe: the child's dup2 onto 0..2 must not
// overwrite another of its ends (possible when the daemon runs with 0..2 closed).
static int high_fd(int fd) {
  if (fd >= 3) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int err = errno;
  close(fd);
  errno = err;
  return moved;
}

struct resources {
  int fds[6];  // stdin r/w, stdout r/w, stderr r/w (child end, parent end); -1 when unused
  char *file, *cwd, *cgroup, **argv, **envp, **sh_argv;
  gid_t *groups;
  void *stack;
};

static void free_resources(struct resources *r, int keep_parent_ends) {
  for (int i = 0; i < 6; i++) {
    bool parent_end = (i == 1) || (i == 2) || (i == 4);  // stdin's write end, stdout's and stderr's read ends
    if (r->fds[i] >= 0 && !(keep_parent_ends && parent_end)) close(r->fds[i]);
  }
  free(r->file);
  free(r->cwd);
  free(r->cgroup);
  free(r->argv);
  free(r->envp);
  free(r->sh_argv);
  free(r->groups);
  if (r->stack) munmap(r->stack, CHILD_STACK);
}

// Opens the pipes: child ends blocking and >= 3, parent ends non-blocking; all close-on-exec.
// fds layout: [0] child stdin, [1] parent stdin, [2] parent stdout, [3] child stdout, [4] parent stderr, [5] child stderr.
static int open_stdio(struct resources *r, bool with_stdin) {
  int p[2];
  if (with_stdin) {
    if (pipe2(p, O_CLOEXEC) < 0) return errno;
    r->fds[0] = p[0];
    r->fds[1] = p[1];
  } else {
    r->fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (r->fds[0] < 0) return errno;
  }
  if (pipe2(p, O_CLOEXEC) < 0) return errno;
  r->fds[2] = p[0];
  r->fds[3] = p[1];
  if (pipe2(p, O_CLOEXEC) < 0) return errno;
  r->fds[4] = p[0];
  r->fds[5] = p[1];
  for (int i = 0; i < 6; i += (i == 0 ? 3 : 2)) {  // 0, 3, 5: the child's ends
    int fd = high_fd(r->fds[i]);
    if (fd < 0) {
      r->fds[i] = -1;
      return errno;
    }
    r->fds[i] = fd;
  }
  int parent[] = {1, 2, 4};
  for (int i = 0; i < 3; i++) {
    int fd = r->fds[parent[i]];
    if (fd < 0) continue;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return errno;
  }
  return 0;
}

static napi_value set_int(napi_env env, napi_value obj, const char *name, int value) {
  napi_value v;
  if (napi_create_int32(env, value, &v) != napi_ok || napi_set_named_property(env, obj, name, v) != napi_ok) return NULL;
  return obj;
}

// One spawn in flight: parsed on the loop thread, cloned on a thread-pool thread, answered on the loop.
struct job {
  uv_work_t work;
  napi_env env;
  napi_ref on_exit, on_spawned;
  napi_async_context async;
  struct resources r;
  struct child c;
  char oom[16];
  bool with_stdin;
  // The outcome, from the worker.
  int err;
  const char *err_step;
  pid_t pid;
  int pidfd;
};

static void free_job(struct job *j, int keep_parent_ends) {
  free_resources(&j->r, keep_parent_ends);
  if (j->on_exit) napi_delete_reference(j->env, j->on_exit);
  if (j->on_spawned) napi_delete_reference(j->env, j->on_spawned);
  if (j->async) napi_async_destroy(j->env, j->async);
  free(j);
}

// Kills and reaps a child that cannot be reported.
static void kill_and_reap(int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
  siginfo_t info;
  while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED) < 0 && errno == EINTR) {}
  close(pidfd);
}

// On a thread-pool thread: the parent sleeps here until the child has exec'd (CLONE_VFORK), and
// on a loaded machine the child may first wait for a CPU (it runs at the child's nice from
// setpriority on), so this must not be the loop's thread. Go's runtime likewise forks from
// whichever OS thread the goroutine is on.
static void do_clone(uv_work_t *work) {
  struct job *j = work->data;
  struct resources *r = &j->r;
  struct child *c = &j->c;
  if ((j->err = open_stdio(r, j->with_stdin)) != 0) {
    j->err_step = "pipe2";
    return;
  }
  r->stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (r->stack == MAP_FAILED) {
    r->stack = NULL;
    j->err = errno;
    j->err_step = "mmap";
    return;
  }
  c->stdio[0] = r->fds[0];
  c->stdio[1] = r->fds[3];
  c->stdio[2] = r->fds[5];
  // No handler of the parent's may run in the child before it has reset them all.
  sigset_t all, old;
  sigfillset(&all);
  if ((j->err = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0) {
    j->err_step = "pthread_sigmask";
    return;
  }
  int pidfd = -1;
  pid_t pid = clone(child_main, (char *)r->stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, c, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (pid < 0) {
    j->err = clone_errno;
    j->err_step = "clone";
    return;
  }
  if (c->step != STEP_NONE) {
    // The child has exited (_exit after the failure): reap it so no zombie stays behind.
    siginfo_t info;
    int wr;
    do wr = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED);
    while (wr < 0 && errno == EINTR);
    close(pidfd);
    j->err = c->err;
    j->err_step = STEP_NAMES[c->step];
    return;
  }
  j->pid = pid;
  j->pidfd = pidfd;
}

// Calls onSpawned(error, child) in the job's async context; an exception it throws is uncaught.
static void call_spawned(struct job *j, napi_value error, napi_value child) {
  napi_env env = j->env;
  napi_value cb, recv, argv[2], ignored;
  if (napi_get_reference_value(env, j->on_spawned, &cb) != napi_ok || napi_get_global(env, &recv) != napi_ok) return;
  argv[0] = error;
  argv[1] = child;
  if (napi_make_callback(env, j->async, recv, cb, 2, argv, &ignored) == napi_pending_exception) {
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
  }
}

// Back on the loop thread: watch the child's exit and hand out its pipe ends, or the error.
static void after_clone(uv_work_t *work, int status) {
  struct job *j = work->data;
  napi_env env = j->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    if (j->pidfd >= 0) kill_and_reap(j->pidfd);
    free_job(j, 0);
    return;
  }
  napi_value undefined, error = NULL, result = NULL;
  napi_get_undefined(env, &undefined);
  if (status != 0) {
    error = errno_error(env, -status, "uv_queue_work", j->r.file);
  } else if (j->err != 0) {
    error = errno_error(env, j->err, j->err_step, j->r.file);
  } else {
    struct instance *inst = NULL;
    uv_loop_t *loop = NULL;
    struct watcher *w = calloc(1, sizeof *w);
    int perr = -1;
    if (w && napi_get_instance_data(env, (void **)&inst) == napi_ok && inst && napi_get_uv_event_loop(env, &loop) == napi_ok &&
        (perr = uv_poll_init(loop, &w->poll, j->pidfd)) == 0) {
      // The watcher takes over the exit callback, its async context and the pidfd.
      w->env = env;
      w->callback = j->on_exit;
      w->async = j->async;
      j->on_exit = NULL;
      j->async = NULL;
      w->pidfd = j->pidfd;
      w->pid = j->pid;
      w->poll.data = w;
      w->owner = inst;
      w->next = inst->watchers;
      if (w->next) w->next->prev = w;
      inst->watchers = w;
      perr = uv_poll_start(&w->poll, UV_READABLE, on_exit_ready);
      if (perr != 0) {
        // Keep the async context for onSpawned below; the watcher gives up the rest.
        j->async = w->async;
        w->async = NULL;
        syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
        siginfo_t info;
        while (waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &info, WEXITED) < 0 && errno == EINTR) {}
        unlink_watcher(w);
        napi_delete_reference(env, w->callback);
        uv_close((uv_handle_t *)&w->poll, on_closed);
      }
    } else {
      free(w);
      kill_and_reap(j->pidfd);
    }
    if (perr != 0) {
      error = errno_error(env, perr < 0 ? -perr : EINVAL, "uv_poll_start", j->r.file);
      free_resources(&j->r, 0);
      memset(&j->r, 0, sizeof j->r);
      for (int i = 0; i < 6; i++) j->r.fds[i] = -1;
    } else if (napi_create_object(env, &result) != napi_ok || !set_int(env, result, "pid", j->pid) ||
               !set_int(env, result, "stdin", j->r.fds[1]) || !set_int(env, result, "stdout", j->r.fds[2]) ||
               !set_int(env, result, "stderr", j->r.fds[4])) {
      result = NULL;
    } else {
      napi_value warnings;
      const char *names[] = {"oom_score_adj", "cgroup", "nice"};
      uint32_t nw = 0;
      bool ok = napi_create_array(env, &warnings) == napi_ok;
      for (int i = 0; i < 3 && ok; i++) {
        if (!(j->c.warnings & (1 << i))) continue;
        napi_value entry, what, code;
        ok = napi_create_object(env, &entry) == napi_ok &&
             napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &what) == napi_ok &&
             napi_create_string_utf8(env, uv_err_name(-j->c.warn_errno[i]), NAPI_AUTO_LENGTH, &code) == napi_ok &&
             napi_set_named_property(env, entry, "step", what) == napi_ok &&
             napi_set_named_property(env, entry, "code", code) == napi_ok &&
             napi_set_element(env, warnings, nw++, entry) == napi_ok;
      }
      if (!ok || napi_set_named_property(env, result, "warnings", warnings) != napi_ok) result = NULL;
    }
    if (perr == 0) {
      // The parent's ends belong to JS now (also when building the result failed: the child runs and
      // its exit is reported; JS sees the error below and closes nothing it was not given).
      int keep[] = {1, 2, 4};
      if (result == NULL) {
        for (int i = 0; i < 3; i++) {
          if (j->r.fds[keep[i]] >= 0) close(j->r.fds[keep[i]]);
        }
        error = plain_error(env, "sandboxd-spawn: building the spawn result failed");
      }
      for (int i = 0; i < 3; i++) j->r.fds[keep[i]] = -1;
    }
  }
  if (j->async == NULL) {
    // The watcher owns the context: make one for this call.
    napi_value resource, name;
    if (napi_create_object(env, &resource) != napi_ok || napi_create_string_utf8(env, "sandboxd:spawn", NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_async_init(env, resource, name, &j->async) != napi_ok) {
      j->async = NULL;
    }
  }
  // error NULL and result NULL together (an error that could not be made): onSpawned sees neither.
  if (j->async) call_spawned(j, error ? error : undefined, result ? result : undefined);
  free_job(j, 0);
  napi_close_handle_scope(env, scope);
}

// spawn(options, onExit, onSpawned): onSpawned(error) or onSpawned(undefined, { pid, stdin, stdout,
// stderr, warnings }) once the child has exec'd; onExit(code, signal) when it has ended. See index.d.ts.
static napi_value spawn(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 3;
  napi_value args[3], opts, v;
  napi_valuetype t, t2;
  CHECK(env, napi_get_cb_info(env, cbinfo, &argc, args, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "spawn(options, onExit, onSpawned) takes three arguments");
    return NULL;
  }
  opts = args[0];
  CHECK(env, napi_typeof(env, args[1], &t));
  CHECK(env, napi_typeof(env, args[2], &t2));
  if (t != napi_function || t2 != napi_function) {
    napi_throw_type_error(env, NULL, "onExit and onSpawned must be functions");
    return NULL;
  }

  struct job *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->env = env;
  j->pidfd = -1;  // until the worker has cloned (a cancelled job never has)
  struct resources *r = &j->r;
  struct child *c = &j->c;
  for (int i = 0; i < 6; i++) r->fds[i] = -1;
  uint32_t argn = 0, envn = 0;
  const char *bad = NULL;

  if (get_prop(env, opts, "file", &v, &t) || t != napi_string || !(r->file = sandboxd_get_string(env, v, NULL))) bad = "options.file must be a string";
  else if (get_prop(env, opts, "argv", &v, &t) || !(r->argv = string_vector(env, v, 0, &argn)) || argn == 0) bad = "options.argv must be a non-empty array of strings";
  else if (get_prop(env, opts, "envp", &v, &t) || !(r->envp = string_vector(env, v, 0, &envn))) bad = "options.envp must be an array of strings";
  if (!bad) {
    // {"/bin/sh", file, argv[1..]} shares argv's strings.
    r->sh_argv = malloc((argn + 2) * sizeof(char *));
    if (!r->sh_argv) bad = "out of memory";
    else {
      r->sh_argv[0] = "/bin/sh";
      r->sh_argv[1] = r->file;
      for (uint32_t i = 1; i <= argn; i++) r->sh_argv[i + 1] = r->argv[i];
    }
  }
  if (!bad && !get_prop(env, opts, "cwd", &v, &t) && t == napi_string && !(r->cwd = sandboxd_get_string(env, v, NULL))) bad = "options.cwd must be a string";
  if (!bad && !get_prop(env, opts, "cgroupProcs", &v, &t) && t == napi_string && !(r->cgroup = sandboxd_get_string(env, v, NULL))) bad = "options.cgroupProcs must be a string";
  if (!bad && !get_prop(env, opts, "oomScoreAdj", &v, &t) && t == napi_number) {
    int32_t n;
    napi_get_value_int32(env, v, &n);
    c->oom = j->oom;
    c->oom_len = (size_t)snprintf(j->oom, sizeof j->oom, "%d", n);
  }
  if (!bad && !get_prop(env, opts, "nice", &v, &t) && t == napi_number) {
    int32_t n;
    napi_get_value_int32(env, v, &n);
    c->set_nice = 1;
    c->nice = n;
  }
  if (!bad && !get_prop(env, opts, "uid", &v, &t) && t == napi_number) {
    uint32_t uid, gid, n = 0;
    napi_get_value_uint32(env, v, &uid);
    if (get_prop(env, opts, "gid", &v, &t) || t != napi_number) bad = "options.gid must be given with options.uid";
    else if (napi_get_value_uint32(env, v, &gid) != napi_ok) bad = "options.gid must be a number";
    else if (get_prop(env, opts, "groups", &v, &t) || napi_get_array_length(env, v, &n) != napi_ok) bad = "options.groups must be given with options.uid";
    else if (n > 65536 || !(r->groups = malloc((n ? n : 1) * sizeof(gid_t)))) bad = "options.groups is too long";
    else {
      for (uint32_t i = 0; i < n && !bad; i++) {
        napi_value g;
        uint32_t gv;
        if (napi_get_element(env, v, i, &g) != napi_ok || napi_get_value_uint32(env, g, &gv) != napi_ok) bad = "options.groups must hold numbers";
        else r->groups[i] = gv;
      }
      c->set_ids = 1;
      c->uid = uid;
      c->gid = gid;
      c->ngroups = n;
      c->groups = r->groups;
    }
  }
  bool with_setsid = false;
  if (!bad && !get_prop(env, opts, "stdin", &v, &t) && t == napi_boolean) napi_get_value_bool(env, v, &j->with_stdin);
  if (!bad && !get_prop(env, opts, "setsid", &v, &t) && t == napi_boolean) napi_get_value_bool(env, v, &with_setsid);
  uv_loop_t *loop = NULL;
  napi_value resource, name;
  if (!bad && (napi_create_reference(env, args[1], 1, &j->on_exit) != napi_ok || napi_create_reference(env, args[2], 1, &j->on_spawned) != napi_ok ||
               napi_create_object(env, &resource) != napi_ok || napi_create_string_utf8(env, "sandboxd:spawn", NAPI_AUTO_LENGTH, &name) != napi_ok ||
               napi_async_init(env, resource, name, &j->async) != napi_ok || napi_get_uv_event_loop(env, &loop) != napi_ok)) {
    bad = "N-API call failed";
  }
  if (bad) {
    free_job(j, 0);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_type_error(env, NULL, bad);
    return NULL;
  }
  c->file = r->file;
  c->argv = r->argv;
  c->sh_argv = r->sh_argv;
  c->envp = r->envp;
  c->cwd = r->cwd;
  c->setsid = with_setsid;
  c->cgroup_procs = r->cgroup;
  j->work.data = j;
  int qerr = uv_queue_work(loop, &j->work, do_clone, after_clone);
  if (qerr != 0) {
    napi_value e = throw_errno(env, -qerr, "uv_queue_work", r->file);
    free_job(j, 0);
    return e;
  }
  return NULL;
}

/*
 * trim(): glibc's malloc_trim(0), which hands the free pages of every malloc arena back to the kernel
 * (free() returns only a heap's top). Returns whether anything was released.
 */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_get_boolean(env, malloc_trim(0) != 0, &out);
  return out;
}

napi_status sandboxd_sendfile_init(napi_env env, napi_value exports);  // sendfile.c
napi_status sandboxd_writefile_init(napi_env env, napi_value exports);  // writefile.c

NAPI_MODULE_INIT() {
  struct instance *inst = calloc(1, sizeof *inst);
  if (!inst || napi_set_instance_data(env, inst, NULL, NULL) != napi_ok || napi_add_env_cleanup_hook(env, instance_cleanup, inst) != napi_ok) {
    free(inst);
    napi_throw_error(env, NULL, "sandboxd-spawn: out of memory");
    return NULL;
  }
  napi_value fn;
  if (napi_create_function(env, "spawn", NAPI_AUTO_LENGTH, spawn, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "spawn", fn) != napi_ok ||
      napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "trim", fn) != napi_ok ||
      sandboxd_sendfile_init(env, exports) != napi_ok || sandboxd_writefile_init(env, exports) != napi_ok) {
    napi_throw_error(env, NULL, "sandboxd-spawn: could not export spawn");
    return NULL;
  }
  if (inotify_exports(env, exports) != napi_ok) return NULL;
  return exports;
}
