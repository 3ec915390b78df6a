/* sigtrap LOG TAG [SECONDS]: logs every catchable signal when it is delivered, for checking
 * which signals Slurm's suspend/resume/scancel deliver to a job's processes, bare or inside a
 * container.
 *
 * Build: cc -O2 -static -o sigtrap sigtrap.c   (static, so it also runs in a busybox rootfs)
 * Lines appended to LOG: "<epoch.ms> <TAG> pid=<pid> <event>", events "start job=J step=S",
 * "SIG<NAME>", "exit <code>".
 *
 * The handler writes the line itself (write(2) is async-signal-safe), so the log shows the
 * kernel's delivery order; shell traps run later and batch pending signals in number order.
 * SIGTSTP is caught, so a suspend shows up as TSTP and the process is then stopped only by
 * Slurm's SIGSTOP (watch /proc/PID/status). SIGTERM and SIGINT are logged and then end the
 * program with 128+N, like a program that cleans up on them; everything else is only logged.
 * After SECONDS (default 600) it exits 0. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fd = 2;
static const char *tag = "?";

static void logline(const char *ev) {
  char buf[256];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int n = snprintf(buf, sizeof buf, "%ld.%03ld %s pid=%d %s\n", (long)ts.tv_sec,
                   ts.tv_nsec / 1000000, tag, (int)getpid(), ev);
  if (n > 0) (void)!write(fd, buf, (size_t)n);
}

static void on_sig(int s) {
  char ev[32];
  const char *name = sigabbrev_np(s);
  snprintf(ev, sizeof ev, "SIG%s", name ? name : "?");
  logline(ev);
  if (s == SIGTERM || s == SIGINT) {
    snprintf(ev, sizeof ev, "exit %d", 128 + s);
    logline(ev);
    _exit(128 + s);
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s LOG TAG [SECONDS]\n", argv[0]);
    return 2;
  }
  fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  tag = argv[2];
  int secs = argc > 3 ? atoi(argv[3]) : 600;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sig;
  sa.sa_flags = SA_RESTART;
  /* Not SIGCHLD (no children) nor the fault signals (a crash must stay a crash). */
  for (int s = 1; s < 32; s++)
    if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD && s != SIGSEGV && s != SIGBUS &&
        s != SIGILL && s != SIGFPE)
      sigaction(s, &sa, NULL);
  char ev[200];
  const char *j = getenv("SLURM_JOB_ID"), *st = getenv("SLURM_STEP_ID");
  snprintf(ev, sizeof ev, "start job=%s step=%s", j ? j : "", st ? st : "batch");
  logline(ev);
  time_t end = time(NULL) + secs;
  while (time(NULL) < end) usleep(100000); /* interrupted by handled signals; short anyway */
  logline("exit 0");
  return 0;
}
