/*
 * uniprove rusage: runs a program (the verify sandbox: bubblewrap or chroot) and
 * writes the CPU time and peak memory of its whole process tree to a file.
 *
 *   uniprove-rusage REPORT PROGRAM [ARG]...
 *
 * REPORT gets one line of JSON when every process of the tree has ended:
 *
 *   {"userUs":<n>,"sysUs":<n>,"maxRssKiB":<n>}
 *
 * from getrusage(RUSAGE_CHILDREN): CPU summed over every process waited for,
 * the largest peak resident set of any one of them. Waiting for PROGRAM alone
 * is not enough: bubblewrap's monitor exits as soon as its init in the new PID
 * namespace reports the prover's status, without waiting for that init, so the
 * prover's figures never reach it (nor /usr/bin/time around it). This program
 * is a child subreaper: the init is handed to it when the monitor exits, and it
 * waits for every process until none is left.
 *
 * It exits as PROGRAM did (the same status, or the same signal), forwards the
 * signals that stop a run to it, and PROGRAM dies with it (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t child = 0;
static volatile sig_atomic_t pending = 0;

static void forward(int sig) {
  if (child > 0)
    kill((pid_t)child, sig);
  else
    pending = sig;
}

static int write_report(const char *path, const struct rusage *ru) {
  char line[160];
  long long user = (long long)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec;
  long long sys = (long long)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
  int n = snprintf(line, sizeof line, "{\"userUs\":%lld,\"sysUs\":%lld,\"maxRssKiB\":%ld}\n", user, sys,
                   (long)ru->ru_maxrss);
  /* Written beside its place and renamed in: a reader never sees half a line. */
  char temp[4096];
  if (snprintf(temp, sizeof temp, "%s.tmp", path) >= (int)sizeof temp) return -1;
  int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  int ok = write(fd, line, (size_t)n) == n;
  if (close(fd) != 0 || !ok) return -1;
  return rename(temp, path);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: uniprove-rusage REPORT PROGRAM [ARG]...\n");
    return 2;
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    fprintf(stderr, "uniprove-rusage: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
    return 125;
  }
  const int stops[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) sigaction(stops[i], &sa, NULL);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "uniprove-rusage: fork: %s\n", strerror(errno));
    return 125;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(125);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "uniprove-rusage: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  child = pid;
  if (pending) kill(pid, pending);

  int status = 0;
  for (;;) {
    int s;
    pid_t done = waitpid(-1, &s, 0);
    if (done == pid) status = s;
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) break; /* ECHILD: every process of the tree has ended */
  }
  struct rusage ru;
  if (getrusage(RUSAGE_CHILDREN, &ru) != 0 || write_report(argv[1], &ru) != 0)
    fprintf(stderr, "uniprove-rusage: cannot write %s: %s\n", argv[1], strerror(errno));

  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    return 128 + sig;
  }
  return WEXITSTATUS(status);
}
