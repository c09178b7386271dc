/*
 * Run a fuzz target over saved inputs, for compilers without libFuzzer
 * and for ctest: every file named on the command line, and every file in
 * every directory named (not recursively), in name order.  Each input
 * runs in its own child process, so one crash is counted and reported
 * and the others still run.  Set FUZZ_REPLAY_NOFORK=1 to run them in
 * this process instead (for a debugger).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	 nofork;
static int	 passed, failed;
/*
 * The directory being replayed.  Static, so the names stay reachable in
 * each child: valgrind's leak check runs there too, and a list held only
 * in a dead register would count as lost.
 */
static char	**names;
static size_t	 nnames;

static int
run_input(const char *path)
{
	struct stat st;
	uint8_t *buf;
	FILE *f;
	size_t n;

	if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &st) == -1) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return 1;
	}
	/* One spare byte, so an empty input still has a valid address. */
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		return 1;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	if (n != (size_t)st.st_size) {
		fprintf(stderr, "%s: short read\n", path);
		free(buf);
		return 1;
	}
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static void
replay(const char *path)
{
	pid_t pid;
	int status;

	if (nofork) {
		if (run_input(path) == 0)
			passed++;
		else
			failed++;
		return;
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		perror("fork");
		exit(2);
	}
	if (pid == 0)
		_exit(run_input(path));
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			perror("waitpid");
			exit(2);
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		passed++;
		return;
	}
	failed++;
	if (WIFSIGNALED(status))
		printf("FAILED: %s (signal %d)\n", path, WTERMSIG(status));
	else
		printf("FAILED: %s (exit %d)\n", path, WEXITSTATUS(status));
}

static int
cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
replay_dir(const char *dir)
{
	struct dirent *de;
	struct stat st;
	char **nn, *path;
	size_t i;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		failed++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&path, "%s/%s", dir, de->d_name) == -1)
			exit(2);
		if (stat(path, &st) == -1 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if ((nn = realloc(names, (nnames + 1) * sizeof(*names))) ==
		    NULL)
			exit(2);
		names = nn;
		names[nnames++] = path;
	}
	closedir(d);
	if (nnames > 0)
		qsort(names, nnames, sizeof(*names), cmp);
	for (i = 0; i < nnames; i++)
		replay(names[i]);
	for (i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	names = NULL;
	nnames = 0;
}

int
main(int argc, char *argv[])
{
	struct stat st;
	const char *e;
	int i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s file-or-directory ...\n", argv[0]);
		return 2;
	}
	e = getenv("FUZZ_REPLAY_NOFORK");
	nofork = e != NULL && *e != '\0' && strcmp(e, "0") != 0;
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == -1) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			failed++;
		} else if (S_ISDIR(st.st_mode))
			replay_dir(argv[i]);
		else
			replay(argv[i]);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 && passed > 0 ? 0 : 1;
}
