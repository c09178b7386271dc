/*
 * A tiny test harness: one line per case ("ok N - name" / "not ok N - name"),
 * typed checks that print both sides on failure, and a closing
 * "N passed, N failed" line.  Each test program includes this once.
 */
#ifndef LIBIMSG_HARNESS_H
#define LIBIMSG_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int	 h_passed, h_failed, h_case_failed, h_ncase;
static const char *h_name;

static void
h_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>

static void
h_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	h_case_failed = 1;
	fprintf(stdout, "#   %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/*
 * Children forked by a case.  A watchdog that fires kills them first
 * (h_kill_children), so a hung test leaves no process behind.
 */
#include <signal.h>
#include <sys/types.h>

#define H_MAXCHILD	256
static pid_t	 h_children[H_MAXCHILD];
static int	 h_nchildren;

static pid_t	 h_fork(void) __attribute__((unused));
static void	 h_kill_children(void) __attribute__((unused));

/* fork(2), remembering the child in the parent. */
static pid_t
h_fork(void)
{
	pid_t pid;

	if ((pid = fork()) == 0)
		h_nchildren = 0;
	else if (pid > 0 && h_nchildren < H_MAXCHILD)
		h_children[h_nchildren++] = pid;
	return pid;
}

/* Async-signal-safe: for watchdogs. */
static void
h_kill_children(void)
{
	int i;

	for (i = 0; i < h_nchildren; i++)
		(void)kill(h_children[i], SIGKILL);
}

/* Number of descriptors open in this process, to catch leaks. */
static int
h_count_fds(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
		return n - 1;	/* the directory's own descriptor */
	}
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

static int h_fd_is_open(int) __attribute__((unused));

static int
h_fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

#define CHECK(c) do {							\
	if (!(c))							\
		h_fail(__FILE__, __LINE__, "CHECK(%s) failed", #c);	\
} while (0)

#define CHECK_INT(a, op, b) do {					\
	long long h_a = (long long)(a), h_b = (long long)(b);		\
	if (!(h_a op h_b))						\
		h_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld",	\
		    #a, #op, #b, h_a, h_b);				\
} while (0)

#define CHECK_UINT(a, op, b) do {					\
	unsigned long long h_a = (unsigned long long)(a);		\
	unsigned long long h_b = (unsigned long long)(b);		\
	if (!(h_a op h_b))						\
		h_fail(__FILE__, __LINE__, "%s %s %s: %llu vs %llu",	\
		    #a, #op, #b, h_a, h_b);				\
} while (0)

#define CHECK_PTR(a, op, b) do {					\
	const void *h_a = (const void *)(a), *h_b = (const void *)(b);	\
	if (!(h_a op h_b))						\
		h_fail(__FILE__, __LINE__, "%s %s %s: %p vs %p",	\
		    #a, #op, #b, h_a, h_b);				\
} while (0)

#define CHECK_MEM(a, b, n) do {						\
	if (memcmp((a), (b), (n)) != 0)					\
		h_fail(__FILE__, __LINE__, "memory %s != %s (%zu bytes)",\
		    #a, #b, (size_t)(n));				\
} while (0)

#define CHECK_STR(a, b) do {						\
	const char *h_a = (a), *h_b = (b);				\
	if (h_a == NULL || h_b == NULL || strcmp(h_a, h_b) != 0)	\
		h_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"",\
		    #a, #b, h_a ? h_a : "(null)", h_b ? h_b : "(null)");\
} while (0)

/* The call must fail with return value r and errno e. */
#define CHECK_FAIL(call, r, e) do {					\
	long long h_r;							\
	int h_e;							\
	errno = 0;							\
	h_r = (long long)(call);					\
	h_e = errno;							\
	if (h_r != (long long)(r) || h_e != (e))			\
		h_fail(__FILE__, __LINE__,				\
		    "%s: returned %lld errno %d (%s), want %lld errno %d (%s)",\
		    #call, h_r, h_e, strerror(h_e), (long long)(r), (e),\
		    strerror(e));					\
} while (0)

/* The call must return NULL with errno e. */
#define CHECK_NULL_ERRNO(call, e) do {					\
	const void *h_p;						\
	int h_e;							\
	errno = 0;							\
	h_p = (const void *)(call);					\
	h_e = errno;							\
	if (h_p != NULL || h_e != (e))					\
		h_fail(__FILE__, __LINE__,				\
		    "%s: returned %p errno %d (%s), want NULL errno %d (%s)",\
		    #call, h_p, h_e, strerror(h_e), (e), strerror(e));	\
} while (0)

/*
 * Run one case.  The fd count before and after must match, so every case
 * is also a descriptor-leak check.
 */
#define RUN(fn) do {							\
	int h_fds0 = h_count_fds(), h_fds1;				\
	h_name = #fn;							\
	h_case_failed = 0;						\
	fn();								\
	h_fds1 = h_count_fds();						\
	if (h_fds1 != h_fds0)						\
		h_fail(__FILE__, __LINE__, "%s leaked %d descriptor(s)",\
		    #fn, h_fds1 - h_fds0);				\
	h_ncase++;							\
	if (h_case_failed) {						\
		h_failed++;						\
		printf("not ok %d - %s\n", h_ncase, #fn);		\
	} else {							\
		h_passed++;						\
		printf("ok %d - %s\n", h_ncase, #fn);			\
	}								\
	fflush(stdout);							\
} while (0)

static int
h_done(void)
{
	printf("%d passed, %d failed\n", h_passed, h_failed);
	return h_failed == 0 ? 0 : 1;
}

#endif /* LIBIMSG_HARNESS_H */
