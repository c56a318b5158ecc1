/*
 * uniprove probe-linger: preloaded (LD_PRELOAD) into the program that
 * `uniprove discover` / `package` run once on the host under strace, never
 * into a package or an image. When the program calls exit (returning from
 * main does), it keeps the process alive for UNIPROVE_PROBE_LINGER_MS
 * milliseconds, so that threads still at work (a database client resolving
 * `localhost`: nsswitch.conf, hosts, libnss_*.so) run on and their opens are
 * traced instead of being cut off by exit_group.
 *
 * exit(3) runs its handlers in the calling thread before exit_group, and other
 * threads keep running meanwhile. The constructor registers the handler with
 * on_exit(3) (atexit where on_exit is missing). Registered from a preloaded
 * library's constructor, it runs after the program's own exit handlers and
 * destructors, just before exit_group.
 *
 * It stops early when the calling thread is the process's only one (read from
 * /proc/self/stat), so a single-threaded program, or a helper it executes,
 * does not wait. A program that leaves through _exit or exit_group directly
 * (Go) never runs the handler.
 *
 * No stdio: only open, read, close and nanosleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define STEP_MS 20L

static long linger_ms;

/* The process's thread count (field 20 of /proc/self/stat), or -1 when unknown. */
static long thread_count(void) {
  char buf[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: count fields after its last ')'. */
  char *p = NULL;
  for (char *q = buf; *q; q++)
    if (*q == ')') p = q;
  if (!p) return -1;
  int field = 2;
  for (p++; *p; p++) {
    if (*p != ' ') continue;
    if (++field == 20) return strtol(p + 1, NULL, 10);
  }
  return -1;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void linger(void) {
  for (long waited = 0; waited < linger_ms; waited += STEP_MS) {
    if (thread_count() == 1) return;
    sleep_ms(linger_ms - waited < STEP_MS ? linger_ms - waited : STEP_MS);
  }
}

#ifdef __GLIBC__
static void on_exit_handler(int status, void *arg) {
  (void)status;
  (void)arg;
  linger();
}
#endif

__attribute__((constructor)) static void probe_linger_init(void) {
  const char *text = getenv("UNIPROVE_PROBE_LINGER_MS");
  if (!text) return;
  char *end;
  long ms = strtol(text, &end, 10);
  if (end == text || *end != '\0' || ms <= 0) return;
  linger_ms = ms > 600000L ? 600000L : ms;
#ifdef __GLIBC__
  on_exit(on_exit_handler, NULL);
#else
  atexit(linger);
#endif
}
