/*
 * Helpers shared by the fuzz targets: checks that stop the process with
 * a message, a deterministic random stream, descriptor accounting and
 * /dev/null descriptors to pass around.  Each target includes this once.
 */
#ifndef LIBIMSG_FUZZ_COMMON_H
#define LIBIMSG_FUZZ_COMMON_H

#include <sys/types.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Not every target uses every helper. */
#define FZ_UNUSED	__attribute__((unused))

static void
fz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));

static void
fz_fail(const char *file, int line, const char *what)
{
	int e = errno;

	fprintf(stderr, "%s:%d: invariant broken: %s (errno %d: %s)\n",
	    file, line, what, e, strerror(e));
	fflush(stderr);
	abort();
}

/* Every check aborts: libFuzzer and the replay driver both see a crash. */
#define CHECK(c) do {							\
	if (!(c))							\
		fz_fail(__FILE__, __LINE__, #c);			\
} while (0)

/* The call must fail with return value r and errno e. */
#define CHECK_ERR(call, r, e) do {					\
	errno = 0;							\
	CHECK((call) == (r) && errno == (e));				\
} while (0)

/* Consumes the input from the front; past the end it reads zeros. */
struct fz_in {
	const uint8_t	*p;
	size_t		 len;
	size_t		 pos;
};

static FZ_UNUSED int
fz_more(const struct fz_in *in)
{
	return in->pos < in->len;
}

static FZ_UNUSED uint8_t
fz_u8(struct fz_in *in)
{
	return in->pos < in->len ? in->p[in->pos++] : 0;
}

static FZ_UNUSED uint16_t
fz_u16(struct fz_in *in)
{
	uint16_t v = fz_u8(in);

	return (uint16_t)(v | fz_u8(in) << 8);
}

static FZ_UNUSED uint64_t
fz_u64(struct fz_in *in)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v |= (uint64_t)fz_u8(in) << (8 * i);
	return v;
}

/*
 * xorshift64*: choices that need no structure of their own (which
 * accessor takes a message apart, say) come from here, seeded by the
 * input, so the script format stays short and every run is repeatable.
 */
static FZ_UNUSED uint64_t
fz_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static FZ_UNUSED uint64_t
fz_seed(uint64_t v)
{
	v ^= 0x9e3779b97f4a7c15ULL;
	return v != 0 ? v : 1;	/* xorshift never leaves 0 */
}

/* Descriptors open in this process. */
static FZ_UNUSED int
fz_count_fds(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	CHECK((d = opendir("/proc/self/fd")) != NULL);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

static FZ_UNUSED int
fz_open_null(void)
{
	int fd;

	CHECK((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) != -1);
	return fd;
}

/* The descriptor is open and is one of the /dev/null ones we sent. */
static FZ_UNUSED int
fz_is_null_fd(int fd)
{
	static dev_t null_rdev;
	static int have_rdev;
	struct stat st;

	if (!have_rdev) {
		CHECK(stat("/dev/null", &st) == 0);
		null_rdev = st.st_rdev;
		have_rdev = 1;
	}
	if (fstat(fd, &st) == -1)
		return 0;
	return S_ISCHR(st.st_mode) && st.st_rdev == null_rdev;
}

#endif /* LIBIMSG_FUZZ_COMMON_H */
