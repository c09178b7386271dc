/*
 * Tests for the ibuf layer (spec sections 3 and 9): allocation, appending,
 * positioned access, reading, views, attached descriptors, and the abort()
 * that guards views against being freed, queued or given a descriptor.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <imsg.h>

#include "harness.h"

/*
 * Some cases ask for close to SIZE_MAX bytes on purpose.  Under
 * AddressSanitizer such a request is fatal unless the allocator is told to
 * return NULL, which is what malloc does everywhere else.
 */
#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN	1
#endif
#endif
#ifdef T_ASAN
const char	*__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#endif

/*
 * A length no malloc can satisfy on a 64-bit system.  Not SIZE_MAX, nor
 * anything that reaches the sign bit once an allocator adds its own
 * header: valgrind counts such a malloc argument as an error of the test
 * program, even when the call is made on purpose and fails as it should.
 */
#define HUGE_LEN	(SIZE_MAX > 0xffffffffU ? SIZE_MAX / 4 : SIZE_MAX)

/* Stop the current case when a precondition for the rest of it fails. */
#define REQUIRE(c) do {							\
	if (!(c)) {							\
		h_fail(__FILE__, __LINE__, "REQUIRE(%s) failed", #c);	\
		return;							\
	}								\
} while (0)

static int
open_fd(void)
{
	int fd;

	if ((fd = open("/dev/null", O_RDONLY)) == -1)
		h_fail(__FILE__, __LINE__, "open /dev/null: %s",
		    strerror(errno));
	return fd;
}

/* A fixed-size ibuf holding exactly the len bytes at p. */
static struct ibuf *
make_buf(const void *p, size_t len)
{
	struct ibuf *b;

	if ((b = ibuf_open(len)) == NULL)
		return NULL;
	if (ibuf_add(b, p, len) == -1) {
		ibuf_free(b);
		return NULL;
	}
	return b;
}

/* Buffer holding a string literal without its NUL. */
#define MAKE_STR(s)	make_buf((s), sizeof(s) - 1)

/*
 * Run fn in a child process and report how it ended: 1 if it was killed
 * by SIGABRT and did not complain about the heap on its way out (glibc's
 * and ASan's allocator checks abort too, and must not pass for the
 * library's own check), 0 otherwise.  The child's stderr is captured and
 * thrown away; core dumps are disabled.
 */
static int
allocator_complained(const char *out)
{
	/* Line prefixes of glibc's malloc checks. */
	static const char *prefix[] = {
		"free(): ", "double free", "munmap_chunk(): ", "malloc(): ",
		"realloc(): ", "corrupted ", "malloc_consolidate(): "
	};
	const char *line;
	size_t i;

	if (strstr(out, "AddressSanitizer") != NULL)
		return 1;
	for (line = out; line != NULL && *line != '\0';) {
		for (i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++)
			if (strncmp(line, prefix[i], strlen(prefix[i])) == 0)
				return 1;
		if ((line = strchr(line, '\n')) != NULL)
			line++;
	}
	return 0;
}

/*
 * Run fn in a child process and report how it ended: 1 if it was killed
 * by SIGABRT without the allocator complaining on the way (glibc's and
 * ASan's heap checks abort too, and must not pass for the library's own
 * check), 0 otherwise, saying why unless name is NULL.  The child's
 * stderr is captured and thrown away; core dumps are disabled.
 */
static int
aborts_in_child(void (*fn)(void), const char *name)
{
	char out[4096];
	size_t len = 0;
	ssize_t n;
	pid_t pid;
	int p[2], status;

	if (pipe(p) == -1) {
		h_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = h_fork()) == -1) {
		h_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		struct rlimit rl = { 0, 0 };

		(void)setrlimit(RLIMIT_CORE, &rl);
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		close(p[1]);
		fn();
		_exit(0);
	}
	close(p[1]);
	for (;;) {
		n = read(p[0], out + len, sizeof(out) - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(out) - 1)
			break;
	}
	out[len] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			h_fail(__FILE__, __LINE__, "waitpid: %s",
			    strerror(errno));
			return -1;
		}
	}
	if (allocator_complained(out)) {
		if (name != NULL)
			printf("#   %s: child died in the allocator: %s\n",
			    name, out);
		return 0;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
		return 1;
	if (name != NULL && WIFSIGNALED(status))
		printf("#   %s: child killed by signal %d\n", name,
		    WTERMSIG(status));
	else if (name != NULL)
		printf("#   %s: child exited with status %d\n", name,
		    WEXITSTATUS(status));
	return 0;
}

#define CHECK_ABORTS(fn)	CHECK_INT(aborts_in_child((fn), #fn), ==, 1)

/* ---- ibuf_open ---- */

static void
open_gives_empty_zeroed_fixed_buffer(void)
{
	static const unsigned char zero[16];
	struct ibuf *b;
	unsigned char *p;

	REQUIRE((b = ibuf_open(16)) != NULL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 16);
	CHECK_UINT(b->max, ==, 16);
	CHECK_UINT(b->wpos, ==, 0);
	CHECK_UINT(b->rpos, ==, 0);
	CHECK_INT(b->fd, ==, -1);
	CHECK_INT(ibuf_fd_avail(b), ==, 0);
	CHECK((p = ibuf_reserve(b, 16)) != NULL);
	if (p != NULL)
		CHECK_MEM(p, zero, 16);
	CHECK_UINT(ibuf_size(b), ==, 16);
	CHECK_UINT(ibuf_left(b), ==, 0);
	ibuf_free(b);
}

static void
open_does_not_grow_past_its_length(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(4)) != NULL);
	CHECK_INT(ibuf_add(b, "abcd", 4), ==, 0);
	CHECK_FAIL(ibuf_add(b, "e", 1), -1, ERANGE);
	CHECK_NULL_ERRNO(ibuf_reserve(b, 1), ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_MEM(ibuf_data(b), "abcd", 4);
	ibuf_free(b);
}

static void
open_zero_length_is_allowed(void)
{
	struct ibuf *b;

	errno = 0;
	b = ibuf_open(0);
	CHECK_PTR(b, !=, NULL);
	REQUIRE(b != NULL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 0);
	CHECK_INT(b->fd, ==, -1);
	CHECK_FAIL(ibuf_add(b, "x", 1), -1, ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
open_huge_fails_with_enomem(void)
{
	CHECK_NULL_ERRNO(ibuf_open(HUGE_LEN), ENOMEM);
}

/* ---- ibuf_dynamic ---- */

static void
dynamic_rejects_zero_max(void)
{
	CHECK_NULL_ERRNO(ibuf_dynamic(0, 0), EINVAL);
	CHECK_NULL_ERRNO(ibuf_dynamic(100, 0), EINVAL);
}

static void
dynamic_rejects_max_below_len(void)
{
	CHECK_NULL_ERRNO(ibuf_dynamic(10, 9), EINVAL);
	CHECK_NULL_ERRNO(ibuf_dynamic(SIZE_MAX, SIZE_MAX - 1), EINVAL);
}

static void
dynamic_accepts_len_equal_to_max(void)
{
	static const unsigned char zero[10];
	struct ibuf *b;
	unsigned char *p;

	REQUIRE((b = ibuf_dynamic(10, 10)) != NULL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 10);
	CHECK_INT(b->fd, ==, -1);
	CHECK((p = ibuf_reserve(b, 10)) != NULL);
	if (p != NULL)
		CHECK_MEM(p, zero, 10);
	CHECK_FAIL(ibuf_add_zero(b, 1), -1, ERANGE);
	ibuf_free(b);
}

static void
dynamic_grows_up_to_max_keeping_contents(void)
{
	unsigned char want[100];
	struct ibuf *b;
	size_t i;

	for (i = 0; i < sizeof(want); i++)
		want[i] = (unsigned char)(i * 7 + 1);
	REQUIRE((b = ibuf_dynamic(0, 100)) != NULL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 100);
	/* Many small appends, so the buffer has to grow repeatedly. */
	for (i = 0; i < 100; i += 10)
		CHECK_INT(ibuf_add(b, want + i, 10), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 100);
	CHECK_UINT(ibuf_left(b), ==, 0);
	CHECK_MEM(ibuf_data(b), want, 100);
	CHECK_FAIL(ibuf_add(b, "x", 1), -1, ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 100);
	CHECK_MEM(ibuf_data(b), want, 100);
	ibuf_free(b);
}

static void
dynamic_growth_returns_zeroed_bytes(void)
{
	static const unsigned char zero[4096];
	struct ibuf *b;
	unsigned char *p;

	REQUIRE((b = ibuf_dynamic(4, 8192)) != NULL);
	CHECK_INT(ibuf_add(b, "\xff\xfe\xfd\xfc", 4), ==, 0);
	CHECK((p = ibuf_reserve(b, 4096)) != NULL);
	if (p != NULL)
		CHECK_MEM(p, zero, 4096);
	CHECK_MEM(ibuf_data(b), "\xff\xfe\xfd\xfc", 4);
	CHECK_UINT(ibuf_size(b), ==, 4100);
	CHECK_UINT(ibuf_left(b), ==, 8192 - 4100);
	ibuf_free(b);
}

static void
dynamic_with_size_max_limit_fails_huge_reserve(void)
{
	struct ibuf *b;

	/*
	 * As OpenBSD's regress (which asks for SIZE_MAX): max allows it, so
	 * only malloc can say no.
	 */
	REQUIRE((b = ibuf_dynamic(10, SIZE_MAX)) != NULL);
	CHECK_UINT(ibuf_left(b), ==, SIZE_MAX);
	CHECK_NULL_ERRNO(ibuf_reserve(b, HUGE_LEN), ENOMEM);
	CHECK_FAIL(ibuf_add_zero(b, HUGE_LEN), -1, ENOMEM);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK(ibuf_reserve(b, 10) != NULL);
	CHECK_UINT(ibuf_size(b), ==, 10);
	/* Now wpos + len overflows. */
	CHECK_NULL_ERRNO(ibuf_reserve(b, SIZE_MAX), ERANGE);
	CHECK_NULL_ERRNO(ibuf_reserve(b, SIZE_MAX - 9), ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 10);
	ibuf_free(b);
}

static void
dynamic_huge_len_fails_with_enomem(void)
{
	CHECK_NULL_ERRNO(ibuf_dynamic(HUGE_LEN, SIZE_MAX), ENOMEM);
}

/* ---- ibuf_reserve ---- */

static void
reserve_returns_write_position_and_advances(void)
{
	struct ibuf *b;
	unsigned char *p;

	REQUIRE((b = ibuf_open(8)) != NULL);
	CHECK_INT(ibuf_add(b, "abc", 3), ==, 0);
	p = ibuf_reserve(b, 2);
	CHECK_PTR(p, ==, (unsigned char *)ibuf_data(b) + 3);
	CHECK_UINT(ibuf_size(b), ==, 5);
	CHECK_UINT(b->wpos, ==, 5);
	CHECK_UINT(ibuf_left(b), ==, 3);
	if (p != NULL)
		memcpy(p, "de", 2);
	CHECK_MEM(ibuf_data(b), "abcde", 5);
	ibuf_free(b);
}

static void
reserve_zero_bytes_returns_write_position(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(8)) != NULL);
	CHECK_INT(ibuf_add(b, "ab", 2), ==, 0);
	CHECK_PTR(ibuf_reserve(b, 0), ==, (unsigned char *)ibuf_data(b) + 2);
	CHECK_UINT(ibuf_size(b), ==, 2);
	ibuf_free(b);
}

static void
reserve_exact_fit_succeeds_one_past_fails_erange(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(8)) != NULL);
	CHECK_INT(ibuf_add(b, "abcde", 5), ==, 0);
	CHECK_NULL_ERRNO(ibuf_reserve(b, 4), ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 5);
	CHECK_UINT(ibuf_left(b), ==, 3);
	CHECK(ibuf_reserve(b, 3) != NULL);
	CHECK_UINT(ibuf_size(b), ==, 8);
	CHECK_NULL_ERRNO(ibuf_reserve(b, 1), ERANGE);
	CHECK_MEM(ibuf_data(b), "abcde", 5);
	ibuf_free(b);
}

static void
reserve_overflowing_size_max_fails_erange(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(4)) != NULL);
	CHECK_INT(ibuf_add(b, "a", 1), ==, 0);
	CHECK_NULL_ERRNO(ibuf_reserve(b, SIZE_MAX), ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 1);
	ibuf_free(b);
}

static void
reserve_on_view_fails_einval(void)
{
	char mem[8] = "abcdefg";
	struct ibuf v;

	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_NULL_ERRNO(ibuf_reserve(&v, 1), EINVAL);
	CHECK_UINT(ibuf_size(&v), ==, 8);
	CHECK_PTR(v.buf, ==, mem);
}

static void
reserve_gives_zeroed_memory_after_truncate(void)
{
	static const unsigned char zero[8];
	struct ibuf *b;
	unsigned char *p;

	/* libimsg zeroes reserved bytes even when they held data before. */
	REQUIRE((b = ibuf_open(8)) != NULL);
	CHECK_INT(ibuf_add(b, "ABCDEFGH", 8), ==, 0);
	CHECK_INT(ibuf_truncate(b, 2), ==, 0);
	CHECK((p = ibuf_reserve(b, 6)) != NULL);
	if (p != NULL)
		CHECK_MEM(p, zero, 6);
	CHECK_MEM(ibuf_data(b), "AB\0\0\0\0\0\0", 8);
	ibuf_free(b);

	REQUIRE((b = ibuf_dynamic(0, 64)) != NULL);
	CHECK_INT(ibuf_add(b, "0123456789abcdef", 16), ==, 0);
	CHECK_INT(ibuf_truncate(b, 0), ==, 0);
	CHECK((p = ibuf_reserve(b, 8)) != NULL);
	if (p != NULL)
		CHECK_MEM(p, zero, 8);
	ibuf_free(b);
}

/* ---- ibuf_add, ibuf_add_ibuf, ibuf_add_zero ---- */

static void
add_appends_bytes_in_order(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 64)) != NULL);
	CHECK_INT(ibuf_add(b, "abc", 3), ==, 0);
	CHECK_INT(ibuf_add(b, "defg", 4), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 7);
	CHECK_MEM(ibuf_data(b), "abcdefg", 7);
	CHECK_UINT(ibuf_left(b), ==, 64 - 7);
	ibuf_free(b);
}

static void
add_zero_length_succeeds_even_without_room(void)
{
	char mem[4] = "abc";
	struct ibuf *b, v;

	REQUIRE((b = ibuf_open(0)) != NULL);
	CHECK_INT(ibuf_add(b, NULL, 0), ==, 0);
	CHECK_INT(ibuf_add(b, "x", 0), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);

	REQUIRE((b = MAKE_STR("full")) != NULL);
	CHECK_INT(ibuf_add(b, "x", 0), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 4);
	ibuf_free(b);

	/* len 0 returns at once, before any view check. */
	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_INT(ibuf_add(&v, "x", 0), ==, 0);
	CHECK_UINT(ibuf_size(&v), ==, 4);
}

static void
add_past_max_fails_erange_and_appends_nothing(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(4)) != NULL);
	CHECK_INT(ibuf_add(b, "abc", 3), ==, 0);
	CHECK_FAIL(ibuf_add(b, "de", 2), -1, ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 3);
	CHECK_INT(ibuf_add(b, "d", 1), ==, 0);
	CHECK_MEM(ibuf_data(b), "abcd", 4);
	ibuf_free(b);
}

static void
add_on_view_fails_einval(void)
{
	char mem[4] = "abc";
	struct ibuf v;

	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_FAIL(ibuf_add(&v, "x", 1), -1, EINVAL);
	CHECK_FAIL(ibuf_add_zero(&v, 1), -1, EINVAL);
	CHECK_FAIL(ibuf_add_n8(&v, 1), -1, EINVAL);
	CHECK_UINT(ibuf_size(&v), ==, 4);
	CHECK_MEM(mem, "abc", 4);
}

static void
add_ibuf_appends_unread_part_and_keeps_source(void)
{
	struct ibuf *src, *dst;

	REQUIRE((src = MAKE_STR("0123456789")) != NULL);
	REQUIRE((dst = ibuf_dynamic(0, 64)) != NULL);
	CHECK_INT(ibuf_skip(src, 3), ==, 0);
	CHECK_INT(ibuf_add(dst, "<", 1), ==, 0);
	CHECK_INT(ibuf_add_ibuf(dst, src), ==, 0);
	CHECK_UINT(ibuf_size(dst), ==, 8);
	CHECK_MEM(ibuf_data(dst), "<3456789", 8);
	CHECK_UINT(ibuf_size(src), ==, 7);
	CHECK_UINT(src->rpos, ==, 3);
	CHECK_UINT(src->wpos, ==, 10);
	ibuf_free(src);
	ibuf_free(dst);
}

static void
add_ibuf_accepts_view_and_empty_source(void)
{
	char mem[5] = "hello";
	struct ibuf v, *empty, *dst;

	REQUIRE((dst = ibuf_dynamic(0, 64)) != NULL);
	REQUIRE((empty = ibuf_open(0)) != NULL);
	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_INT(ibuf_add_ibuf(dst, &v), ==, 0);
	CHECK_INT(ibuf_add_ibuf(dst, empty), ==, 0);
	CHECK_UINT(ibuf_size(dst), ==, 5);
	CHECK_MEM(ibuf_data(dst), "hello", 5);
	CHECK_UINT(ibuf_size(&v), ==, 5);
	ibuf_free(empty);
	ibuf_free(dst);
}

static void
add_ibuf_too_big_fails_erange(void)
{
	struct ibuf *src, *dst;

	REQUIRE((src = MAKE_STR("abcdef")) != NULL);
	REQUIRE((dst = ibuf_open(5)) != NULL);
	CHECK_FAIL(ibuf_add_ibuf(dst, src), -1, ERANGE);
	CHECK_UINT(ibuf_size(dst), ==, 0);
	CHECK_INT(ibuf_skip(src, 1), ==, 0);
	CHECK_INT(ibuf_add_ibuf(dst, src), ==, 0);
	CHECK_MEM(ibuf_data(dst), "bcdef", 5);
	ibuf_free(src);
	ibuf_free(dst);
}

static void
add_ibuf_to_itself_appends_unread_part(void)
{
	struct ibuf *b;

	/* Tiny start, so appending has to move the memory it reads from. */
	REQUIRE((b = ibuf_dynamic(1, 4096)) != NULL);
	CHECK_INT(ibuf_add(b, "xabc", 4), ==, 0);
	CHECK_INT(ibuf_skip(b, 1), ==, 0);
	CHECK_INT(ibuf_add_ibuf(b, b), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_MEM(ibuf_data(b), "abcabc", 6);
	CHECK_INT(ibuf_add_ibuf(b, b), ==, 0);
	CHECK_MEM(ibuf_data(b), "abcabcabcabc", 12);
	CHECK_UINT(b->rpos, ==, 1);
	ibuf_free(b);
}

static void
add_zero_appends_zero_bytes(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(8)) != NULL);
	/* Leave garbage in the memory that add_zero will cover again. */
	CHECK_INT(ibuf_add(b, "XXXXXXXX", 8), ==, 0);
	CHECK_INT(ibuf_truncate(b, 1), ==, 0);
	CHECK_INT(ibuf_add_zero(b, 5), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_MEM(ibuf_data(b), "X\0\0\0\0\0", 6);
	CHECK_INT(ibuf_add_zero(b, 0), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_FAIL(ibuf_add_zero(b, 3), -1, ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_INT(ibuf_add_zero(b, 2), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 0);
	CHECK_FAIL(ibuf_add_zero(b, SIZE_MAX), -1, ERANGE);
	ibuf_free(b);

	REQUIRE((b = ibuf_open(0)) != NULL);
	CHECK_INT(ibuf_add_zero(b, 0), ==, 0);
	ibuf_free(b);
}

/* ---- integer adders ---- */

static void
add_n8_appends_one_byte(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_INT(ibuf_add_n8(b, 0xab), ==, 0);
	CHECK_INT(ibuf_add_n8(b, 0), ==, 0);
	CHECK_INT(ibuf_add_n8(b, UINT8_MAX), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 3);
	CHECK_MEM(ibuf_data(b), "\xab\x00\xff", 3);
	ibuf_free(b);
}

static void
add_n8_rejects_value_above_uint8_max(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_FAIL(ibuf_add_n8(b, 0x100), -1, EINVAL);
	CHECK_FAIL(ibuf_add_n8(b, UINT64_MAX), -1, EINVAL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
add_n16_appends_big_endian(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_INT(ibuf_add_n16(b, 0x1234), ==, 0);
	CHECK_INT(ibuf_add_n16(b, UINT16_MAX), ==, 0);
	CHECK_INT(ibuf_add_n16(b, 0x00ff), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_MEM(ibuf_data(b), "\x12\x34\xff\xff\x00\xff", 6);
	ibuf_free(b);
}

static void
add_n16_rejects_value_above_uint16_max(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_FAIL(ibuf_add_n16(b, 0x10000), -1, EINVAL);
	CHECK_FAIL(ibuf_add_n16(b, UINT64_MAX), -1, EINVAL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
add_n32_appends_big_endian(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_INT(ibuf_add_n32(b, 0x12345678), ==, 0);
	CHECK_INT(ibuf_add_n32(b, UINT32_MAX), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 8);
	CHECK_MEM(ibuf_data(b), "\x12\x34\x56\x78\xff\xff\xff\xff", 8);
	ibuf_free(b);
}

static void
add_n32_rejects_value_above_uint32_max(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_FAIL(ibuf_add_n32(b, 0x100000000ULL), -1, EINVAL);
	CHECK_FAIL(ibuf_add_n32(b, UINT64_MAX), -1, EINVAL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
add_n64_appends_big_endian_without_range_check(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_INT(ibuf_add_n64(b, 0x0102030405060708ULL), ==, 0);
	CHECK_INT(ibuf_add_n64(b, UINT64_MAX), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 16);
	CHECK_MEM(ibuf_data(b), "\x01\x02\x03\x04\x05\x06\x07\x08"
	    "\xff\xff\xff\xff\xff\xff\xff\xff", 16);
	ibuf_free(b);
}

static void
add_h16_appends_host_order(void)
{
	uint16_t v = 0x1234;
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_INT(ibuf_add_h16(b, 0x1234), ==, 0);
	CHECK_INT(ibuf_add_h16(b, UINT16_MAX), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_MEM(ibuf_data(b), &v, 2);
	CHECK_MEM((unsigned char *)ibuf_data(b) + 2, "\xff\xff", 2);
	CHECK_FAIL(ibuf_add_h16(b, 0x10000), -1, EINVAL);
	CHECK_UINT(ibuf_size(b), ==, 4);
	ibuf_free(b);
}

static void
add_h32_appends_host_order(void)
{
	uint32_t v = 0x12345678;
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_INT(ibuf_add_h32(b, 0x12345678), ==, 0);
	CHECK_INT(ibuf_add_h32(b, UINT32_MAX), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 8);
	CHECK_MEM(ibuf_data(b), &v, 4);
	CHECK_MEM((unsigned char *)ibuf_data(b) + 4, "\xff\xff\xff\xff", 4);
	CHECK_FAIL(ibuf_add_h32(b, 0x100000000ULL), -1, EINVAL);
	CHECK_UINT(ibuf_size(b), ==, 8);
	ibuf_free(b);
}

static void
add_h64_appends_host_order_without_range_check(void)
{
	uint64_t v = 0x0102030405060708ULL;
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	CHECK_INT(ibuf_add_h64(b, 0x0102030405060708ULL), ==, 0);
	CHECK_INT(ibuf_add_h64(b, UINT64_MAX), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 16);
	CHECK_MEM(ibuf_data(b), &v, 8);
	CHECK_MEM((unsigned char *)ibuf_data(b) + 8,
	    "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
	ibuf_free(b);
}

static void
integer_adders_fail_erange_when_full(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(7)) != NULL);
	CHECK_INT(ibuf_add(b, "abcdef", 6), ==, 0);
	CHECK_FAIL(ibuf_add_n16(b, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_add_n32(b, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_add_n64(b, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_add_h16(b, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_add_h32(b, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_add_h64(b, 1), -1, ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_INT(ibuf_add_n8(b, 1), ==, 0);
	CHECK_FAIL(ibuf_add_n8(b, 1), -1, ERANGE);
	CHECK_MEM(ibuf_data(b), "abcdef\x01", 7);
	ibuf_free(b);
}

static void
integer_adders_check_value_before_room(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(0)) != NULL);
	CHECK_FAIL(ibuf_add_n8(b, 0x100), -1, EINVAL);
	CHECK_FAIL(ibuf_add_n16(b, 0x10000), -1, EINVAL);
	CHECK_FAIL(ibuf_add_n32(b, 0x100000000ULL), -1, EINVAL);
	CHECK_FAIL(ibuf_add_h16(b, 0x10000), -1, EINVAL);
	CHECK_FAIL(ibuf_add_h32(b, 0x100000000ULL), -1, EINVAL);
	ibuf_free(b);
}

/* ---- ibuf_add_strbuf ---- */

static void
add_strbuf_pads_with_nul(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 64)) != NULL);
	CHECK_INT(ibuf_add(b, "#", 1), ==, 0);
	CHECK_INT(ibuf_add_strbuf(b, "abc", 8), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 9);
	CHECK_MEM(ibuf_data(b), "#abc\0\0\0\0\0", 9);
	ibuf_free(b);
}

static void
add_strbuf_exact_fit_includes_terminator(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 64)) != NULL);
	CHECK_INT(ibuf_add_strbuf(b, "abc", 4), ==, 0);
	CHECK_INT(ibuf_add_strbuf(b, "", 1), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 5);
	CHECK_MEM(ibuf_data(b), "abc\0\0", 5);
	ibuf_free(b);
}

static void
add_strbuf_too_long_fails_eoverflow_keeping_reservation(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 64)) != NULL);
	CHECK_FAIL(ibuf_add_strbuf(b, "abc", 3), -1, EOVERFLOW);
	/* The bytes stay reserved, holding the truncated string. */
	CHECK_UINT(ibuf_size(b), ==, 3);
	CHECK_MEM(ibuf_data(b), "ab\0", 3);
	ibuf_free(b);
}

static void
add_strbuf_zero_length_fails_eoverflow(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(8)) != NULL);
	CHECK_FAIL(ibuf_add_strbuf(b, "", 0), -1, EOVERFLOW);
	CHECK_FAIL(ibuf_add_strbuf(b, "a", 0), -1, EOVERFLOW);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
add_strbuf_without_room_fails_erange(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(3)) != NULL);
	CHECK_FAIL(ibuf_add_strbuf(b, "a", 4), -1, ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

/* ---- ibuf_seek ---- */

static void
seek_is_relative_to_read_position(void)
{
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_INT(ibuf_skip(b, 2), ==, 0);
	CHECK_PTR(ibuf_seek(b, 0, 4), ==, ibuf_data(b));
	CHECK_PTR(ibuf_seek(b, 1, 2), ==, (unsigned char *)ibuf_data(b) + 1);
	CHECK_PTR(ibuf_seek(b, 1, 2), ==, b->buf + 3);
	CHECK_MEM(ibuf_seek(b, 1, 2), "de", 2);
	CHECK_UINT(ibuf_size(b), ==, 4);
	ibuf_free(b);
}

static void
seek_checks_bounds_and_overflow(void)
{
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_INT(ibuf_skip(b, 2), ==, 0);	/* 4 bytes unread */
	CHECK_PTR(ibuf_seek(b, 4, 0), ==, (unsigned char *)ibuf_data(b) + 4);
	CHECK_PTR(ibuf_seek(b, 3, 1), ==, (unsigned char *)ibuf_data(b) + 3);
	CHECK_NULL_ERRNO(ibuf_seek(b, 3, 2), ERANGE);
	CHECK_NULL_ERRNO(ibuf_seek(b, 0, 5), ERANGE);
	CHECK_NULL_ERRNO(ibuf_seek(b, 5, 0), ERANGE);
	CHECK_NULL_ERRNO(ibuf_seek(b, 1, SIZE_MAX), ERANGE);
	CHECK_NULL_ERRNO(ibuf_seek(b, SIZE_MAX, 1), ERANGE);
	CHECK_NULL_ERRNO(ibuf_seek(b, SIZE_MAX, SIZE_MAX), ERANGE);
	CHECK_NULL_ERRNO(ibuf_seek(b, SIZE_MAX, 0), ERANGE);
	ibuf_free(b);

	/* OpenBSD's regress case: nothing written yet. */
	REQUIRE((b = ibuf_open(10)) != NULL);
	CHECK_NULL_ERRNO(ibuf_seek(b, 1, SIZE_MAX), ERANGE);
	CHECK_NULL_ERRNO(ibuf_seek(b, 0, 1), ERANGE);
	ibuf_free(b);
}

static void
seek_works_on_view(void)
{
	char mem[6] = "abcdef";
	struct ibuf v;

	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_PTR(ibuf_seek(&v, 2, 3), ==, mem + 2);
	CHECK_PTR(ibuf_seek(&v, 6, 0), ==, mem + 6);
	CHECK_NULL_ERRNO(ibuf_seek(&v, 4, 3), ERANGE);
}

/* ---- ibuf_set and the set_n / set_h family ---- */

static void
set_overwrites_in_place_relative_to_read_position(void)
{
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_INT(ibuf_set(b, 2, "XY", 2), ==, 0);
	CHECK_MEM(ibuf_data(b), "abXYef", 6);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_INT(ibuf_skip(b, 1), ==, 0);
	CHECK_INT(ibuf_set(b, 0, "Z", 1), ==, 0);
	CHECK_MEM(b->buf, "aZXYef", 6);
	CHECK_INT(ibuf_set(b, 3, "!!", 2), ==, 0);	/* exact end */
	CHECK_MEM(b->buf, "aZXY!!", 6);
	CHECK_UINT(b->wpos, ==, 6);
	ibuf_free(b);
}

static void
set_past_end_fails_erange_and_writes_nothing(void)
{
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_FAIL(ibuf_set(b, 5, "XY", 2), -1, ERANGE);
	CHECK_FAIL(ibuf_set(b, 7, "X", 1), -1, ERANGE);
	CHECK_FAIL(ibuf_set(b, 1, "X", SIZE_MAX), -1, ERANGE);
	CHECK_FAIL(ibuf_set(b, SIZE_MAX, "X", 1), -1, ERANGE);
	CHECK_MEM(ibuf_data(b), "abcdef", 6);
	CHECK_UINT(ibuf_size(b), ==, 6);
	ibuf_free(b);
}

static void
set_zero_length_still_checks_position(void)
{
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abc")) != NULL);
	CHECK_INT(ibuf_set(b, 0, NULL, 0), ==, 0);
	CHECK_INT(ibuf_set(b, 3, NULL, 0), ==, 0);
	CHECK_FAIL(ibuf_set(b, 4, NULL, 0), -1, ERANGE);
	CHECK_FAIL(ibuf_set(b, SIZE_MAX, "x", 0), -1, ERANGE);
	CHECK_MEM(ibuf_data(b), "abc", 3);
	ibuf_free(b);
}

static void
set_on_view_writes_caller_memory(void)
{
	char mem[4] = "abcd";
	struct ibuf v;

	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_INT(ibuf_set(&v, 1, "XY", 2), ==, 0);
	CHECK_MEM(mem, "aXYd", 4);
	CHECK_INT(ibuf_set_n16(&v, 2, 0x4142), ==, 0);
	CHECK_MEM(mem, "aXAB", 4);
	CHECK_FAIL(ibuf_set(&v, 3, "XY", 2), -1, ERANGE);
	CHECK_MEM(mem, "aXAB", 4);
}

static void
set_n8_n16_n32_n64_write_big_endian(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(16)) != NULL);
	CHECK_INT(ibuf_add_zero(b, 16), ==, 0);
	CHECK_INT(ibuf_set_n8(b, 0, 0xa5), ==, 0);
	CHECK_INT(ibuf_set_n16(b, 1, 0x1234), ==, 0);
	CHECK_INT(ibuf_set_n32(b, 3, 0x89abcdef), ==, 0);
	CHECK_INT(ibuf_set_n64(b, 7, 0x0102030405060708ULL), ==, 0);
	CHECK_MEM(ibuf_data(b), "\xa5\x12\x34\x89\xab\xcd\xef"
	    "\x01\x02\x03\x04\x05\x06\x07\x08\x00", 16);
	CHECK_INT(ibuf_set_n64(b, 8, UINT64_MAX), ==, 0);
	CHECK_MEM((unsigned char *)ibuf_data(b) + 7,
	    "\x01\xff\xff\xff\xff\xff\xff\xff\xff", 9);
	CHECK_UINT(ibuf_size(b), ==, 16);
	ibuf_free(b);
}

static void
set_h16_h32_h64_write_host_order(void)
{
	uint16_t v16 = 0x1234;
	uint32_t v32 = 0x89abcdef;
	uint64_t v64 = 0x0102030405060708ULL;
	struct ibuf *b;
	unsigned char *p;

	REQUIRE((b = ibuf_open(15)) != NULL);
	CHECK_INT(ibuf_add_zero(b, 15), ==, 0);
	p = ibuf_data(b);
	CHECK_INT(ibuf_set_h16(b, 1, 0x1234), ==, 0);
	CHECK_INT(ibuf_set_h32(b, 3, 0x89abcdef), ==, 0);
	CHECK_INT(ibuf_set_h64(b, 7, 0x0102030405060708ULL), ==, 0);
	CHECK_UINT(p[0], ==, 0);
	CHECK_MEM(p + 1, &v16, 2);
	CHECK_MEM(p + 3, &v32, 4);
	CHECK_MEM(p + 7, &v64, 8);
	ibuf_free(b);
}

static void
set_integers_reject_values_too_wide_before_position(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(8)) != NULL);
	CHECK_INT(ibuf_add(b, "abcdefgh", 8), ==, 0);
	CHECK_FAIL(ibuf_set_n8(b, 0, 0x100), -1, EINVAL);
	CHECK_FAIL(ibuf_set_n16(b, 0, 0x10000), -1, EINVAL);
	CHECK_FAIL(ibuf_set_n32(b, 0, 0x100000000ULL), -1, EINVAL);
	CHECK_FAIL(ibuf_set_h16(b, 0, 0x10000), -1, EINVAL);
	CHECK_FAIL(ibuf_set_h32(b, 0, 0x100000000ULL), -1, EINVAL);
	/* The value is checked first, even when the position is bad too. */
	CHECK_FAIL(ibuf_set_n16(b, 100, 0x10000), -1, EINVAL);
	CHECK_FAIL(ibuf_set_h32(b, 100, UINT64_MAX), -1, EINVAL);
	CHECK_MEM(ibuf_data(b), "abcdefgh", 8);
	ibuf_free(b);
}

static void
set_integers_past_end_fail_erange(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_open(8)) != NULL);
	CHECK_INT(ibuf_add(b, "abcdefgh", 8), ==, 0);
	CHECK_FAIL(ibuf_set_n8(b, 8, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_set_n16(b, 7, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_set_n32(b, 5, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_set_n64(b, 1, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_set_h16(b, 7, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_set_h32(b, 5, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_set_h64(b, 1, 1), -1, ERANGE);
	CHECK_FAIL(ibuf_set_n64(b, SIZE_MAX, 1), -1, ERANGE);
	CHECK_MEM(ibuf_data(b), "abcdefgh", 8);
	/* Exact fits at the end. */
	CHECK_INT(ibuf_set_n8(b, 7, 0x31), ==, 0);
	CHECK_INT(ibuf_set_n64(b, 0, 0x4142434445464748ULL), ==, 0);
	CHECK_MEM(ibuf_data(b), "ABCDEFGH", 8);
	ibuf_free(b);
}

/* ---- ibuf_set_maxsize, imsg_set_maxsize ---- */

static void
set_maxsize_lowers_the_limit(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 100)) != NULL);
	CHECK_INT(ibuf_set_maxsize(b, 50), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 50);
	CHECK_UINT(b->max, ==, 50);
	CHECK_INT(ibuf_add_zero(b, 50), ==, 0);
	CHECK_FAIL(ibuf_add_zero(b, 1), -1, ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 50);
	/* Down to exactly what is written. */
	CHECK_INT(ibuf_set_maxsize(b, 50), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 0);
	ibuf_free(b);
}

static void
set_maxsize_above_current_fails_erange(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 100)) != NULL);
	CHECK_FAIL(ibuf_set_maxsize(b, 101), -1, ERANGE);
	CHECK_FAIL(ibuf_set_maxsize(b, SIZE_MAX), -1, ERANGE);
	CHECK_UINT(ibuf_left(b), ==, 100);
	CHECK_INT(ibuf_set_maxsize(b, 100), ==, 0);
	CHECK_INT(ibuf_set_maxsize(b, 60), ==, 0);
	CHECK_FAIL(ibuf_set_maxsize(b, 61), -1, ERANGE);
	CHECK_UINT(ibuf_left(b), ==, 60);
	ibuf_free(b);

	REQUIRE((b = ibuf_open(16)) != NULL);
	CHECK_INT(ibuf_set_maxsize(b, 8), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 8);
	CHECK_FAIL(ibuf_set_maxsize(b, 16), -1, ERANGE);
	CHECK_FAIL(ibuf_add_zero(b, 9), -1, ERANGE);
	CHECK_INT(ibuf_add_zero(b, 8), ==, 0);
	ibuf_free(b);
}

static void
set_maxsize_below_written_data_fails(void)
{
	struct ibuf *b;

	/*
	 * The newest upstream change says a max below wpos "fails hard";
	 * libimsg reads that as the usual ERANGE with nothing changed.
	 */
	REQUIRE((b = ibuf_dynamic(0, 100)) != NULL);
	CHECK_INT(ibuf_add(b, "0123456789", 10), ==, 0);
	CHECK_INT(ibuf_skip(b, 5), ==, 0);	/* rpos does not count */
	CHECK_FAIL(ibuf_set_maxsize(b, 9), -1, ERANGE);
	CHECK_FAIL(ibuf_set_maxsize(b, 0), -1, ERANGE);
	CHECK_UINT(ibuf_left(b), ==, 90);
	CHECK_UINT(ibuf_size(b), ==, 5);
	CHECK_MEM(ibuf_data(b), "56789", 5);
	ibuf_free(b);
}

static void
set_maxsize_on_view_fails_einval(void)
{
	char mem[4] = "abcd";
	struct ibuf v;

	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_FAIL(ibuf_set_maxsize(&v, 0), -1, EINVAL);
	CHECK_FAIL(ibuf_set_maxsize(&v, 4), -1, EINVAL);
	CHECK_UINT(ibuf_size(&v), ==, 4);
	CHECK_UINT(ibuf_left(&v), ==, 0);
}

static void
imsg_set_maxsize_adds_header_size(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 1000)) != NULL);
	CHECK_INT(imsg_set_maxsize(b, 100), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 100 + IMSG_HEADER_SIZE);
	CHECK_FAIL(imsg_set_maxsize(b, 101), -1, ERANGE);
	CHECK_INT(imsg_set_maxsize(b, 0), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, IMSG_HEADER_SIZE);
	ibuf_free(b);
}

static void
imsg_set_maxsize_rejects_above_uint32_max_minus_header(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, SIZE_MAX)) != NULL);
	CHECK_FAIL(imsg_set_maxsize(b, (size_t)UINT32_MAX - 15), -1, ERANGE);
	CHECK_FAIL(imsg_set_maxsize(b, SIZE_MAX), -1, ERANGE);
	CHECK_UINT(ibuf_left(b), ==, SIZE_MAX);
	CHECK_INT(imsg_set_maxsize(b, (size_t)UINT32_MAX - 16), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, UINT32_MAX);
	ibuf_free(b);
}

/* ---- ibuf_data, ibuf_size, ibuf_left ---- */

static void
data_size_left_follow_read_and_write_positions(void)
{
	struct ibuf *b;
	unsigned char *base;

	REQUIRE((b = ibuf_open(10)) != NULL);
	base = ibuf_data(b);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 10);
	CHECK_INT(ibuf_add(b, "wxyz", 4), ==, 0);
	CHECK_PTR(ibuf_data(b), ==, base);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_UINT(ibuf_left(b), ==, 6);
	CHECK_INT(ibuf_skip(b, 3), ==, 0);
	CHECK_PTR(ibuf_data(b), ==, base + 3);
	CHECK_UINT(ibuf_size(b), ==, 1);
	CHECK_UINT(ibuf_left(b), ==, 6);	/* max - wpos, not rpos */
	CHECK_INT(ibuf_skip(b, 1), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_PTR(ibuf_data(b), ==, base + 4);
	ibuf_free(b);
}

static void
left_is_zero_for_views(void)
{
	char mem[8];
	struct ibuf *b, v, sub;

	memset(mem, 'm', sizeof(mem));
	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_UINT(ibuf_left(&v), ==, 0);
	CHECK_INT(ibuf_get_ibuf(&v, 3, &sub), ==, 0);
	CHECK_UINT(ibuf_left(&sub), ==, 0);

	REQUIRE((b = ibuf_open(16)) != NULL);
	CHECK_INT(ibuf_add_zero(b, 4), ==, 0);
	ibuf_from_ibuf(&v, b);
	CHECK_UINT(ibuf_left(&v), ==, 0);
	CHECK_INT(ibuf_get_ibuf(b, 2, &sub), ==, 0);
	CHECK_UINT(ibuf_left(&sub), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 12);
	ibuf_free(b);
}

/* ---- ibuf_truncate, ibuf_rewind ---- */

static void
truncate_shrinks_relative_to_read_position(void)
{
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_INT(ibuf_truncate(b, 6), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_INT(ibuf_truncate(b, 4), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_MEM(ibuf_data(b), "abcd", 4);
	CHECK_INT(ibuf_skip(b, 1), ==, 0);
	CHECK_INT(ibuf_truncate(b, 2), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 2);
	CHECK_UINT(b->wpos, ==, 3);
	CHECK_MEM(ibuf_data(b), "bc", 2);
	CHECK_UINT(ibuf_left(b), ==, 3);
	/* Writing continues at the new end. */
	CHECK_INT(ibuf_add(b, "Z", 1), ==, 0);
	CHECK_MEM(b->buf, "abcZ", 4);
	CHECK_INT(ibuf_truncate(b, 0), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_UINT(b->wpos, ==, 1);
	ibuf_free(b);
}

static void
truncate_grows_with_zeros_up_to_max(void)
{
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 8)) != NULL);
	CHECK_INT(ibuf_add(b, "ab", 2), ==, 0);
	CHECK_INT(ibuf_truncate(b, 5), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 5);
	CHECK_MEM(ibuf_data(b), "ab\0\0\0", 5);
	CHECK_FAIL(ibuf_truncate(b, 9), -1, ERANGE);
	CHECK_FAIL(ibuf_truncate(b, SIZE_MAX), -1, ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 5);
	CHECK_INT(ibuf_truncate(b, 8), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 0);
	ibuf_free(b);
}

static void
truncate_on_view_shrinks_but_cannot_grow(void)
{
	char mem[6] = "abcdef";
	struct ibuf v;

	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_FAIL(ibuf_truncate(&v, 7), -1, ERANGE);
	CHECK_UINT(ibuf_size(&v), ==, 6);
	CHECK_INT(ibuf_truncate(&v, 6), ==, 0);
	CHECK_INT(ibuf_truncate(&v, 3), ==, 0);
	CHECK_UINT(ibuf_size(&v), ==, 3);
	CHECK_FAIL(ibuf_truncate(&v, 4), -1, ERANGE);
	CHECK_UINT(ibuf_size(&v), ==, 3);
	CHECK_MEM(mem, "abcdef", 6);
}

static void
rewind_makes_consumed_bytes_readable_again(void)
{
	char out[4];
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcd")) != NULL);
	CHECK_INT(ibuf_get(b, out, 3), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 1);
	ibuf_rewind(b);
	CHECK_UINT(b->rpos, ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_MEM(ibuf_data(b), "abcd", 4);
	CHECK_INT(ibuf_get(b, out, 4), ==, 0);
	CHECK_MEM(out, "abcd", 4);
	ibuf_free(b);
}

/* ---- views: ibuf_from_buffer, ibuf_from_ibuf ---- */

static void
from_buffer_makes_read_only_view(void)
{
	char mem[8] = "abcdefgh", out[3];
	struct ibuf v;

	memset(&v, 0xa5, sizeof(v));	/* stale contents must go */
	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_PTR(v.buf, ==, mem);
	CHECK_PTR(ibuf_data(&v), ==, mem);
	CHECK_UINT(v.size, ==, 8);
	CHECK_UINT(v.wpos, ==, 8);
	CHECK_UINT(v.rpos, ==, 0);
	CHECK_UINT(v.max, ==, 0);
	CHECK_INT(v.fd, ==, -2);
	CHECK_UINT(ibuf_size(&v), ==, 8);
	CHECK_UINT(ibuf_left(&v), ==, 0);
	CHECK_INT(ibuf_fd_avail(&v), ==, 0);
	CHECK_INT(ibuf_get(&v, out, 3), ==, 0);
	CHECK_MEM(out, "abc", 3);
	CHECK_UINT(ibuf_size(&v), ==, 5);
	CHECK_MEM(mem, "abcdefgh", 8);
	ibuf_rewind(&v);
	CHECK_UINT(ibuf_size(&v), ==, 8);
}

static void
from_buffer_of_nothing_is_empty_view(void)
{
	char c;
	struct ibuf v;

	ibuf_from_buffer(&v, NULL, 0);
	CHECK_UINT(ibuf_size(&v), ==, 0);
	CHECK_UINT(ibuf_left(&v), ==, 0);
	CHECK_FAIL(ibuf_get(&v, &c, 1), -1, EBADMSG);
	CHECK_NULL_ERRNO(ibuf_reserve(&v, 1), EINVAL);
}

static void
from_ibuf_peeks_without_consuming(void)
{
	char out[4];
	struct ibuf *b, v;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_INT(ibuf_skip(b, 2), ==, 0);
	ibuf_from_ibuf(&v, b);
	CHECK_PTR(ibuf_data(&v), ==, ibuf_data(b));
	CHECK_UINT(ibuf_size(&v), ==, 4);
	CHECK_UINT(ibuf_left(&v), ==, 0);
	CHECK_INT(v.fd, ==, -2);
	CHECK_INT(ibuf_get(&v, out, 4), ==, 0);
	CHECK_MEM(out, "cdef", 4);
	CHECK_UINT(ibuf_size(&v), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_UINT(b->rpos, ==, 2);
	CHECK_MEM(ibuf_data(b), "cdef", 4);
	/* A view of a buffer cannot grow. */
	CHECK_NULL_ERRNO(ibuf_reserve(&v, 1), EINVAL);
	ibuf_free(b);
}

static void
from_ibuf_does_not_take_the_fd(void)
{
	struct ibuf *b, v;
	int fd;

	REQUIRE((b = MAKE_STR("abc")) != NULL);
	fd = open_fd();
	ibuf_fd_set(b, fd);
	ibuf_from_ibuf(&v, b);
	CHECK_INT(ibuf_fd_avail(&v), ==, 0);
	CHECK_INT(ibuf_fd_get(&v), ==, -1);
	CHECK_INT(ibuf_fd_avail(b), ==, 1);
	CHECK_INT(b->fd, ==, fd);
	ibuf_free(b);
	CHECK(!h_fd_is_open(fd));
}

/* ---- reading: ibuf_get, ibuf_get_ibuf, ibuf_skip ---- */

static void
get_copies_and_advances(void)
{
	char out[8];
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_INT(ibuf_get(b, out, 2), ==, 0);
	CHECK_MEM(out, "ab", 2);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_UINT(b->rpos, ==, 2);
	CHECK_INT(ibuf_get(b, out, 0), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_INT(ibuf_get(b, out, 4), ==, 0);	/* exact */
	CHECK_MEM(out, "cdef", 4);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_INT(ibuf_get(b, out, 0), ==, 0);
	ibuf_free(b);
}

static void
get_short_fails_ebadmsg_and_consumes_nothing(void)
{
	char out[8];
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abc")) != NULL);
	memset(out, '.', sizeof(out));
	CHECK_FAIL(ibuf_get(b, out, 4), -1, EBADMSG);
	CHECK_FAIL(ibuf_get(b, out, SIZE_MAX), -1, EBADMSG);
	CHECK_MEM(out, "........", 8);
	CHECK_UINT(ibuf_size(b), ==, 3);
	CHECK_INT(ibuf_skip(b, 3), ==, 0);
	CHECK_FAIL(ibuf_get(b, out, 1), -1, EBADMSG);
	ibuf_free(b);
}

static void
get_ibuf_makes_view_of_next_bytes(void)
{
	char out[4];
	struct ibuf *b, v;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_INT(ibuf_skip(b, 1), ==, 0);
	memset(&v, 0xa5, sizeof(v));
	CHECK_INT(ibuf_get_ibuf(b, 3, &v), ==, 0);
	CHECK_PTR(ibuf_data(&v), ==, b->buf + 1);
	CHECK_UINT(ibuf_size(&v), ==, 3);
	CHECK_UINT(ibuf_left(&v), ==, 0);
	CHECK_INT(v.fd, ==, -2);
	CHECK_INT(ibuf_fd_avail(&v), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 2);
	CHECK_MEM(ibuf_data(b), "ef", 2);
	/* Reading the view does not move the parent. */
	CHECK_INT(ibuf_get(&v, out, 3), ==, 0);
	CHECK_MEM(out, "bcd", 3);
	CHECK_UINT(ibuf_size(b), ==, 2);
	CHECK_NULL_ERRNO(ibuf_reserve(&v, 1), EINVAL);
	/* A view of a view works too, and the exact rest is allowed. */
	CHECK_INT(ibuf_get_ibuf(b, 2, &v), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_MEM(ibuf_data(&v), "ef", 2);
	ibuf_free(b);
}

static void
get_ibuf_short_fails_ebadmsg_and_consumes_nothing(void)
{
	struct ibuf *b, v;

	REQUIRE((b = MAKE_STR("abc")) != NULL);
	CHECK_FAIL(ibuf_get_ibuf(b, 4, &v), -1, EBADMSG);
	CHECK_FAIL(ibuf_get_ibuf(b, SIZE_MAX, &v), -1, EBADMSG);
	CHECK_UINT(ibuf_size(b), ==, 3);
	CHECK_INT(ibuf_get_ibuf(b, 0, &v), ==, 0);
	CHECK_UINT(ibuf_size(&v), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 3);
	ibuf_free(b);
}

static void
skip_advances_and_checks_length(void)
{
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcdef")) != NULL);
	CHECK_INT(ibuf_skip(b, 0), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_INT(ibuf_skip(b, 2), ==, 0);
	CHECK_MEM(ibuf_data(b), "cdef", 4);
	CHECK_FAIL(ibuf_skip(b, 5), -1, EBADMSG);
	CHECK_FAIL(ibuf_skip(b, SIZE_MAX), -1, EBADMSG);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_INT(ibuf_skip(b, 4), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 0);
	CHECK_FAIL(ibuf_skip(b, 1), -1, EBADMSG);
	ibuf_free(b);
}

/* ---- integer getters ---- */

static void
get_n8_n16_n32_n64_convert_from_big_endian(void)
{
	static const char wire[] = "\xa5" "\x12\x34" "\x89\xab\xcd\xef"
	    "\x01\x02\x03\x04\x05\x06\x07\x08";
	uint8_t v8 = 0;
	uint16_t v16 = 0;
	uint32_t v32 = 0;
	uint64_t v64 = 0;
	struct ibuf *b;

	REQUIRE((b = MAKE_STR(wire)) != NULL);
	CHECK_INT(ibuf_get_n8(b, &v8), ==, 0);
	CHECK_UINT(v8, ==, 0xa5);
	CHECK_INT(ibuf_get_n16(b, &v16), ==, 0);
	CHECK_UINT(v16, ==, 0x1234);
	CHECK_INT(ibuf_get_n32(b, &v32), ==, 0);
	CHECK_UINT(v32, ==, 0x89abcdefU);
	CHECK_INT(ibuf_get_n64(b, &v64), ==, 0);
	CHECK_UINT(v64, ==, 0x0102030405060708ULL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
get_h16_h32_h64_read_host_order(void)
{
	uint16_t w16 = 0x1234, v16 = 0;
	uint32_t w32 = 0x89abcdef, v32 = 0;
	uint64_t w64 = 0x0102030405060708ULL, v64 = 0;
	struct ibuf *b;

	REQUIRE((b = ibuf_open(14)) != NULL);
	CHECK_INT(ibuf_add(b, &w16, 2), ==, 0);
	CHECK_INT(ibuf_add(b, &w32, 4), ==, 0);
	CHECK_INT(ibuf_add(b, &w64, 8), ==, 0);
	CHECK_INT(ibuf_get_h16(b, &v16), ==, 0);
	CHECK_UINT(v16, ==, 0x1234);
	CHECK_INT(ibuf_get_h32(b, &v32), ==, 0);
	CHECK_UINT(v32, ==, 0x89abcdefU);
	CHECK_INT(ibuf_get_h64(b, &v64), ==, 0);
	CHECK_UINT(v64, ==, 0x0102030405060708ULL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
integer_getters_round_trip_with_adders(void)
{
	uint8_t v8;
	uint16_t v16, h16;
	uint32_t v32, h32;
	uint64_t v64, h64;
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 64)) != NULL);
	CHECK_INT(ibuf_add_n8(b, 0xfe), ==, 0);
	CHECK_INT(ibuf_add_n16(b, 0xfedc), ==, 0);
	CHECK_INT(ibuf_add_n32(b, 0xfedcba98), ==, 0);
	CHECK_INT(ibuf_add_n64(b, 0xfedcba9876543210ULL), ==, 0);
	CHECK_INT(ibuf_add_h16(b, 0x0102), ==, 0);
	CHECK_INT(ibuf_add_h32(b, 0x01020304), ==, 0);
	CHECK_INT(ibuf_add_h64(b, 0x0102030405060708ULL), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 1 + 2 + 4 + 8 + 2 + 4 + 8);
	CHECK_INT(ibuf_get_n8(b, &v8), ==, 0);
	CHECK_INT(ibuf_get_n16(b, &v16), ==, 0);
	CHECK_INT(ibuf_get_n32(b, &v32), ==, 0);
	CHECK_INT(ibuf_get_n64(b, &v64), ==, 0);
	CHECK_INT(ibuf_get_h16(b, &h16), ==, 0);
	CHECK_INT(ibuf_get_h32(b, &h32), ==, 0);
	CHECK_INT(ibuf_get_h64(b, &h64), ==, 0);
	CHECK_UINT(v8, ==, 0xfe);
	CHECK_UINT(v16, ==, 0xfedc);
	CHECK_UINT(v32, ==, 0xfedcba98U);
	CHECK_UINT(v64, ==, 0xfedcba9876543210ULL);
	CHECK_UINT(h16, ==, 0x0102);
	CHECK_UINT(h32, ==, 0x01020304);
	CHECK_UINT(h64, ==, 0x0102030405060708ULL);
	ibuf_free(b);
}

static void
integer_getters_short_fail_ebadmsg_leaving_value(void)
{
	uint8_t v8 = 0x5a;
	uint16_t v16 = 0xbeef;
	uint32_t v32 = 0xdeadbeef;
	uint64_t v64 = 0x0123456789abcdefULL;
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("\x11\x22\x33\x44\x55\x66\x77")) != NULL);
	CHECK_INT(ibuf_skip(b, 6), ==, 0);	/* one byte left */
	CHECK_FAIL(ibuf_get_n16(b, &v16), -1, EBADMSG);
	CHECK_FAIL(ibuf_get_h16(b, &v16), -1, EBADMSG);
	CHECK_UINT(v16, ==, 0xbeef);
	ibuf_rewind(b);
	CHECK_INT(ibuf_skip(b, 4), ==, 0);	/* three bytes left */
	CHECK_FAIL(ibuf_get_n32(b, &v32), -1, EBADMSG);
	CHECK_FAIL(ibuf_get_h32(b, &v32), -1, EBADMSG);
	CHECK_UINT(v32, ==, 0xdeadbeefU);
	ibuf_rewind(b);				/* seven bytes left */
	CHECK_FAIL(ibuf_get_n64(b, &v64), -1, EBADMSG);
	CHECK_FAIL(ibuf_get_h64(b, &v64), -1, EBADMSG);
	CHECK_UINT(v64, ==, 0x0123456789abcdefULL);
	CHECK_UINT(ibuf_size(b), ==, 7);
	CHECK_INT(ibuf_skip(b, 7), ==, 0);
	CHECK_FAIL(ibuf_get_n8(b, &v8), -1, EBADMSG);
	CHECK_UINT(v8, ==, 0x5a);
	ibuf_free(b);
}

/* ---- strings: ibuf_get_string, ibuf_get_strbuf ---- */

static void
get_string_copies_and_terminates(void)
{
	struct ibuf *b;
	char *s;

	REQUIRE((b = MAKE_STR("hello world")) != NULL);
	s = ibuf_get_string(b, 5);
	CHECK_STR(s, "hello");
	free(s);
	CHECK_UINT(ibuf_size(b), ==, 6);
	/* All of the rest, no NUL in the data. */
	s = ibuf_get_string(b, 6);
	CHECK_STR(s, " world");
	free(s);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
get_string_stops_at_nul_but_consumes_len(void)
{
	struct ibuf *b;
	char *s;

	REQUIRE((b = MAKE_STR("ab\0cdXY")) != NULL);
	s = ibuf_get_string(b, 5);
	CHECK_STR(s, "ab");
	free(s);
	CHECK_UINT(ibuf_size(b), ==, 2);
	CHECK_MEM(ibuf_data(b), "XY", 2);
	ibuf_free(b);
}

static void
get_string_zero_length_gives_empty_string(void)
{
	struct ibuf *b;
	char *s;

	REQUIRE((b = MAKE_STR("abc")) != NULL);
	s = ibuf_get_string(b, 0);
	CHECK_STR(s, "");
	free(s);
	CHECK_UINT(ibuf_size(b), ==, 3);
	ibuf_free(b);
}

static void
get_string_short_fails_ebadmsg(void)
{
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abc")) != NULL);
	CHECK_NULL_ERRNO(ibuf_get_string(b, 4), EBADMSG);
	CHECK_NULL_ERRNO(ibuf_get_string(b, SIZE_MAX), EBADMSG);
	CHECK_UINT(ibuf_size(b), ==, 3);
	ibuf_free(b);
}

static void
get_strbuf_copies_terminated_string(void)
{
	char str[8];
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abc\0\0xyz\0")) != NULL);
	memset(str, '.', sizeof(str));
	CHECK_INT(ibuf_get_strbuf(b, str, 5), ==, 0);
	CHECK_MEM(str, "abc\0\0...", 8);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_INT(ibuf_get_strbuf(b, str, 4), ==, 0);	/* exact rest */
	CHECK_STR(str, "xyz");
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
get_strbuf_unterminated_fails_eoverflow_but_consumes(void)
{
	char str[8];
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abcdefgh")) != NULL);
	memset(str, '.', sizeof(str));
	CHECK_FAIL(ibuf_get_strbuf(b, str, 4), -1, EOVERFLOW);
	CHECK_MEM(str, "abc\0....", 8);
	CHECK_UINT(ibuf_size(b), ==, 4);
	/* A NUL before the last byte does not count. */
	ibuf_free(b);
	REQUIRE((b = MAKE_STR("a\0c")) != NULL);
	CHECK_FAIL(ibuf_get_strbuf(b, str, 3), -1, EOVERFLOW);
	CHECK_STR(str, "a");
	CHECK_UINT(str[2], ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
get_strbuf_zero_length_fails_einval(void)
{
	char str[4] = "xyz";
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("abc")) != NULL);
	CHECK_FAIL(ibuf_get_strbuf(b, str, 0), -1, EINVAL);
	CHECK_UINT(ibuf_size(b), ==, 3);
	CHECK_MEM(str, "xyz", 4);
	ibuf_free(b);
}

static void
get_strbuf_short_fails_ebadmsg(void)
{
	char str[8];
	struct ibuf *b;

	REQUIRE((b = MAKE_STR("ab\0")) != NULL);
	CHECK_FAIL(ibuf_get_strbuf(b, str, 4), -1, EBADMSG);
	CHECK_FAIL(ibuf_get_strbuf(b, str, SIZE_MAX), -1, EBADMSG);
	CHECK_UINT(ibuf_size(b), ==, 3);
	ibuf_free(b);
}

static void
strbuf_round_trip(void)
{
	char str[16];
	struct ibuf *b;

	REQUIRE((b = ibuf_dynamic(0, 64)) != NULL);
	CHECK_INT(ibuf_add_strbuf(b, "imsg", 16), ==, 0);
	CHECK_INT(ibuf_add_strbuf(b, "", 1), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 17);
	CHECK_INT(ibuf_get_strbuf(b, str, 16), ==, 0);
	CHECK_STR(str, "imsg");
	CHECK_INT(ibuf_get_strbuf(b, str, 1), ==, 0);
	CHECK_STR(str, "");
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

/* ---- ibuf_free ---- */

static void
free_null_is_harmless_and_keeps_errno(void)
{
	errno = 1234;
	ibuf_free(NULL);
	CHECK_INT(errno, ==, 1234);
}

static void
free_preserves_errno(void)
{
	struct ibuf *b;
	int fd;

	REQUIRE((b = MAKE_STR("secret")) != NULL);
	fd = open_fd();
	ibuf_fd_set(b, fd);
	errno = 4321;
	ibuf_free(b);
	CHECK_INT(errno, ==, 4321);
	CHECK(!h_fd_is_open(fd));
}

static void
free_preserves_errno_when_close_fails(void)
{
	struct ibuf *b;
	int fd;

	/*
	 * Close the descriptor behind the buffer's back, so the close()
	 * inside ibuf_free fails with EBADF; errno must still survive.
	 */
	REQUIRE((b = ibuf_open(4)) != NULL);
	fd = open_fd();
	ibuf_fd_set(b, fd);
	close(fd);
	errno = 4321;
	ibuf_free(b);
	CHECK_INT(errno, ==, 4321);
}

static void
free_closes_attached_fd(void)
{
	struct ibuf *b;
	int fd;

	REQUIRE((b = ibuf_dynamic(0, 64)) != NULL);
	fd = open_fd();
	ibuf_fd_set(b, fd);
	CHECK(h_fd_is_open(fd));
	ibuf_free(b);
	CHECK(!h_fd_is_open(fd));
}

/* ---- descriptors: ibuf_fd_avail, ibuf_fd_get, ibuf_fd_set ---- */

static void
fd_avail_reports_attached_fd(void)
{
	struct ibuf *b;
	int fd, got;

	REQUIRE((b = ibuf_open(4)) != NULL);
	CHECK_INT(ibuf_fd_avail(b), ==, 0);
	fd = open_fd();
	ibuf_fd_set(b, fd);
	CHECK_INT(ibuf_fd_avail(b), !=, 0);
	CHECK_INT(b->fd, ==, fd);
	got = ibuf_fd_get(b);
	CHECK_INT(ibuf_fd_avail(b), ==, 0);
	ibuf_free(b);
	close(got);
}

static void
fd_get_transfers_ownership_to_caller(void)
{
	struct ibuf *b;
	int fd, got;

	REQUIRE((b = ibuf_open(4)) != NULL);
	fd = open_fd();
	ibuf_fd_set(b, fd);
	got = ibuf_fd_get(b);
	CHECK_INT(got, ==, fd);
	CHECK_INT(b->fd, ==, -1);
	CHECK_INT(ibuf_fd_get(b), ==, -1);
	CHECK_INT(ibuf_fd_get(b), ==, -1);
	ibuf_free(b);
	CHECK(h_fd_is_open(fd));	/* the caller owns it now */
	close(fd);
}

static void
fd_get_without_fd_returns_minus_one(void)
{
	char mem[2] = "ab";
	struct ibuf *b, v;

	REQUIRE((b = ibuf_open(4)) != NULL);
	CHECK_INT(ibuf_fd_get(b), ==, -1);
	CHECK_INT(b->fd, ==, -1);
	ibuf_free(b);

	/* A view's mark is not a descriptor, and stays a mark. */
	ibuf_from_buffer(&v, mem, sizeof(mem));
	CHECK_INT(ibuf_fd_get(&v), ==, -1);
	CHECK_INT(ibuf_fd_avail(&v), ==, 0);
	CHECK_INT(v.fd, ==, -2);
}

static void
fd_set_replacing_closes_previous_fd_once(void)
{
	struct ibuf *b;
	int fd1, fd2, reuse;

	REQUIRE((b = ibuf_open(4)) != NULL);
	fd1 = open_fd();
	fd2 = open_fd();
	ibuf_fd_set(b, fd1);
	ibuf_fd_set(b, fd2);
	CHECK(!h_fd_is_open(fd1));
	CHECK(h_fd_is_open(fd2));
	CHECK_INT(b->fd, ==, fd2);
	/* The lowest free number is fd1's: a second close would hit it. */
	reuse = open_fd();
	CHECK_INT(reuse, ==, fd1);
	ibuf_free(b);
	CHECK(!h_fd_is_open(fd2));
	CHECK(h_fd_is_open(reuse));
	close(reuse);
}

static void
fd_set_negative_closes_and_clears(void)
{
	struct ibuf *b;
	int fd, reuse;

	REQUIRE((b = ibuf_open(4)) != NULL);
	fd = open_fd();
	ibuf_fd_set(b, fd);
	ibuf_fd_set(b, -1);
	CHECK(!h_fd_is_open(fd));
	CHECK_INT(b->fd, ==, -1);
	CHECK_INT(ibuf_fd_avail(b), ==, 0);
	ibuf_fd_set(b, -5);
	CHECK_INT(b->fd, ==, -1);	/* any negative value means none */
	reuse = open_fd();
	CHECK_INT(reuse, ==, fd);
	ibuf_free(b);
	CHECK(h_fd_is_open(reuse));
	close(reuse);
}

static void
fd_free_after_get_leaves_fd_open(void)
{
	struct ibuf *b;
	int fd, got;

	REQUIRE((b = ibuf_dynamic(0, 16)) != NULL);
	fd = open_fd();
	ibuf_fd_set(b, fd);
	got = ibuf_fd_get(b);
	ibuf_fd_set(b, -1);		/* nothing to close any more */
	CHECK(h_fd_is_open(fd));
	ibuf_free(b);
	CHECK(h_fd_is_open(got));
	close(got);
}

/* ---- views abort when freed, queued or given a descriptor ---- */

static void
child_free_from_buffer_view(void)
{
	char mem[8] = "abcdefg";
	struct ibuf v;

	ibuf_from_buffer(&v, mem, sizeof(mem));
	ibuf_free(&v);
}

static void
child_free_heap_backed_view(void)
{
	struct ibuf *v;
	char *mem;

	/*
	 * Both the struct and its memory come from malloc, so a library that
	 * forgot the check and called free() on them would not crash.
	 */
	if ((v = malloc(sizeof(*v))) == NULL || (mem = malloc(8)) == NULL)
		_exit(2);
	ibuf_from_buffer(v, mem, 8);
	ibuf_free(v);
}

/*
 * The children below that take a view of a heap ibuf free that ibuf
 * before the call that must abort, so nothing is left for valgrind to call
 * a leak when the child dies.  The abort checks only the view's mark,
 * never the memory it points to.
 */
static void
child_free_get_ibuf_view(void)
{
	struct ibuf *b, v;

	if ((b = MAKE_STR("abcdef")) == NULL)
		_exit(2);
	if (ibuf_get_ibuf(b, 3, &v) == -1)
		_exit(2);
	ibuf_free(b);
	ibuf_free(&v);
}

static void
child_free_from_ibuf_view(void)
{
	struct ibuf *b, v;

	if ((b = MAKE_STR("abcdef")) == NULL)
		_exit(2);
	ibuf_from_ibuf(&v, b);
	ibuf_free(b);
	ibuf_free(&v);
}

static void
child_close_view(void)
{
	char mem[4] = "abc";
	struct msgbuf *m;
	struct ibuf v;

	if ((m = msgbuf_new()) == NULL)
		_exit(2);
	ibuf_from_buffer(&v, mem, sizeof(mem));
	ibuf_close(m, &v);
}

static void
child_close_get_ibuf_view(void)
{
	struct msgbuf *m;
	struct ibuf *b, v;

	if ((m = msgbuf_new()) == NULL || (b = MAKE_STR("abcdef")) == NULL)
		_exit(2);
	if (ibuf_get_ibuf(b, 2, &v) == -1)
		_exit(2);
	ibuf_free(b);
	ibuf_close(m, &v);
}

static void
child_push_view(void)
{
	char mem[4] = "abc";
	struct ibufqueue *q;
	struct ibuf v;

	if ((q = ibufq_new()) == NULL)
		_exit(2);
	ibuf_from_buffer(&v, mem, sizeof(mem));
	ibufq_push(q, &v);
}

static void
child_push_get_ibuf_view(void)
{
	struct ibufqueue *q;
	struct ibuf *b, v;

	if ((q = ibufq_new()) == NULL || (b = MAKE_STR("abcdef")) == NULL)
		_exit(2);
	if (ibuf_get_ibuf(b, 2, &v) == -1)
		_exit(2);
	ibuf_free(b);
	ibufq_push(q, &v);
}

static void
child_fd_set_on_view(void)
{
	char mem[4] = "abc";
	struct ibuf v;
	int fd;

	if ((fd = open("/dev/null", O_RDONLY)) == -1)
		_exit(2);
	ibuf_from_buffer(&v, mem, sizeof(mem));
	ibuf_fd_set(&v, fd);
}

static void
child_fd_set_minus_one_on_view(void)
{
	char mem[4] = "abc";
	struct ibuf v;

	ibuf_from_buffer(&v, mem, sizeof(mem));
	ibuf_fd_set(&v, -1);
}

static void
child_fd_set_on_get_ibuf_view(void)
{
	struct ibuf *b, v;
	int fd;

	if ((fd = open("/dev/null", O_RDONLY)) == -1)
		_exit(2);
	if ((b = MAKE_STR("abcdef")) == NULL)
		_exit(2);
	if (ibuf_get_ibuf(b, 2, &v) == -1)
		_exit(2);
	ibuf_free(b);
	ibuf_fd_set(&v, fd);
}

static void
child_free_heap_ibuf(void)
{
	struct ibuf *b;

	if ((b = MAKE_STR("abc")) == NULL)
		_exit(2);
	ibuf_free(b);
}

static void
abort_check_tells_normal_exit_apart(void)
{
	/* The helper itself must be able to say "did not abort". */
	CHECK_INT(aborts_in_child(child_free_heap_ibuf, NULL), ==, 0);
}

static void
free_of_view_aborts(void)
{
	CHECK_ABORTS(child_free_from_buffer_view);
	CHECK_ABORTS(child_free_heap_backed_view);
	CHECK_ABORTS(child_free_get_ibuf_view);
	CHECK_ABORTS(child_free_from_ibuf_view);
}

static void
close_of_view_aborts(void)
{
	CHECK_ABORTS(child_close_view);
	CHECK_ABORTS(child_close_get_ibuf_view);
}

static void
push_of_view_aborts(void)
{
	CHECK_ABORTS(child_push_view);
	CHECK_ABORTS(child_push_get_ibuf_view);
}

static void
fd_set_on_view_aborts(void)
{
	CHECK_ABORTS(child_fd_set_on_view);
	CHECK_ABORTS(child_fd_set_minus_one_on_view);
	CHECK_ABORTS(child_fd_set_on_get_ibuf_view);
}

/*
 * Differences from upstream (README "Differences from upstream", the
 * COMPATIBILITY section of ibuf_add(3)): each case checks libimsg's side
 * of one, where OpenBSD's imsg-buffer.c behaves otherwise.
 */

static void
set_maxsize_below_written_fails_with_erange(void)
{
	struct ibuf *b;

	/* Upstream takes the limit, and ibuf_left then wraps around. */
	REQUIRE((b = ibuf_dynamic(16, 64)) != NULL);
	CHECK_INT(ibuf_add(b, "0123456789", 10), ==, 0);
	CHECK_FAIL(ibuf_set_maxsize(b, 4), -1, ERANGE);
	CHECK_UINT(b->max, ==, 64);
	CHECK_UINT(ibuf_left(b), ==, 54);
	CHECK_INT(ibuf_add(b, "ab", 2), ==, 0);
	CHECK_MEM(ibuf_data(b), "0123456789ab", 12);
	ibuf_free(b);
}

static void
lowered_maxsize_is_enforced_inside_allocated_memory(void)
{
	struct ibuf *b;

	/*
	 * 64 bytes are allocated; upstream would still let the buffer grow
	 * to them past a limit lowered to 16.
	 */
	REQUIRE((b = ibuf_dynamic(64, 1024)) != NULL);
	CHECK_INT(ibuf_add(b, "0123456789", 10), ==, 0);
	CHECK_INT(ibuf_set_maxsize(b, 16), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 6);
	CHECK_FAIL(ibuf_add(b, "abcdefg", 7), -1, ERANGE);
	CHECK_NULL_ERRNO(ibuf_reserve(b, 7), ERANGE);
	CHECK_UINT(ibuf_size(b), ==, 10);
	CHECK_INT(ibuf_add(b, "abcdef", 6), ==, 0);
	CHECK_UINT(ibuf_left(b), ==, 0);
	CHECK_FAIL(ibuf_add_n8(b, 1), -1, ERANGE);
	CHECK_MEM(ibuf_data(b), "0123456789abcdef", 16);
	ibuf_free(b);

	/* The same through imsg_set_maxsize, which adds the header. */
	REQUIRE((b = ibuf_dynamic(64, 1024)) != NULL);
	CHECK_INT(imsg_set_maxsize(b, 0), ==, 0);
	CHECK_INT(ibuf_add_zero(b, IMSG_HEADER_SIZE), ==, 0);
	CHECK_FAIL(ibuf_add_n8(b, 1), -1, ERANGE);
	ibuf_free(b);
}

static void
reserve_and_seek_of_zero_bytes_without_memory_return_a_pointer(void)
{
	struct ibuf *b;
	void *p;

	/* Upstream returns NULL here and leaves errno as it was. */
	REQUIRE((b = ibuf_open(0)) != NULL);
	CHECK_PTR(ibuf_data(b), ==, NULL);
	errno = 0;
	p = ibuf_reserve(b, 0);
	CHECK_PTR(p, !=, NULL);
	CHECK_INT(errno, ==, 0);
	p = ibuf_seek(b, 0, 0);
	CHECK_PTR(p, !=, NULL);
	CHECK_INT(errno, ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 0);
	/* Past the end is still an error. */
	CHECK_NULL_ERRNO(ibuf_seek(b, 1, 0), ERANGE);
	CHECK_NULL_ERRNO(ibuf_reserve(b, 1), ERANGE);
	ibuf_free(b);

	REQUIRE((b = ibuf_dynamic(0, 8)) != NULL);
	CHECK_PTR(ibuf_reserve(b, 0), !=, NULL);
	CHECK_PTR(ibuf_seek(b, 0, 0), !=, NULL);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);
}

static void
add_strbuf_of_length_zero_fails_with_eoverflow_on_any_buffer(void)
{
	struct ibuf *b, view;
	char mem[4] = "abc";

	/*
	 * No room for the NUL.  Upstream says EINVAL on a view and leaves
	 * errno alone on a buffer without memory.
	 */
	REQUIRE((b = ibuf_open(0)) != NULL);
	CHECK_FAIL(ibuf_add_strbuf(b, "x", 0), -1, EOVERFLOW);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);

	REQUIRE((b = ibuf_dynamic(8, 64)) != NULL);
	CHECK_FAIL(ibuf_add_strbuf(b, "", 0), -1, EOVERFLOW);
	CHECK_UINT(ibuf_size(b), ==, 0);
	ibuf_free(b);

	ibuf_from_buffer(&view, mem, sizeof(mem));
	CHECK_FAIL(ibuf_add_strbuf(&view, "x", 0), -1, EOVERFLOW);
	CHECK_UINT(ibuf_size(&view), ==, 4);
	CHECK_MEM(mem, "abc", 4);
	/* A length that needs room is refused as on any view. */
	CHECK_FAIL(ibuf_add_strbuf(&view, "x", 2), -1, EINVAL);
}

static void
add_ibuf_of_a_buffer_into_itself_survives_growth(void)
{
	struct ibuf *b, view;
	unsigned char want[2048];
	size_t i;

	/*
	 * Upstream copies from the old memory after growing into new
	 * memory, a use after free.  Fill a small buffer to its end, so
	 * every append moves it.
	 */
	REQUIRE((b = ibuf_dynamic(8, sizeof(want))) != NULL);
	for (i = 0; i < 8; i++)
		CHECK_INT(ibuf_add_n8(b, i), ==, 0);
	for (i = 0; i < 8; i++)
		CHECK_INT(ibuf_add_ibuf(b, b), ==, 0);
	REQUIRE(ibuf_size(b) == sizeof(want));
	for (i = 0; i < sizeof(want); i++)
		want[i] = (unsigned char)(i % 8);
	CHECK_MEM(ibuf_data(b), want, sizeof(want));
	ibuf_free(b);

	/* A view into the buffer counts as the buffer. */
	REQUIRE((b = ibuf_dynamic(4, 64)) != NULL);
	CHECK_INT(ibuf_add(b, "wxyz", 4), ==, 0);
	REQUIRE(ibuf_seek(b, 1, 2) != NULL);
	ibuf_from_buffer(&view, ibuf_seek(b, 1, 2), 2);
	CHECK_INT(ibuf_add_ibuf(b, &view), ==, 0);
	CHECK_UINT(ibuf_size(b), ==, 6);
	CHECK_MEM(ibuf_data(b), "wxyzxy", 6);
	ibuf_free(b);
}

int
main(void)
{
	RUN(open_gives_empty_zeroed_fixed_buffer);
	RUN(open_does_not_grow_past_its_length);
	RUN(open_zero_length_is_allowed);
	RUN(open_huge_fails_with_enomem);

	RUN(dynamic_rejects_zero_max);
	RUN(dynamic_rejects_max_below_len);
	RUN(dynamic_accepts_len_equal_to_max);
	RUN(dynamic_grows_up_to_max_keeping_contents);
	RUN(dynamic_growth_returns_zeroed_bytes);
	RUN(dynamic_with_size_max_limit_fails_huge_reserve);
	RUN(dynamic_huge_len_fails_with_enomem);

	RUN(reserve_returns_write_position_and_advances);
	RUN(reserve_zero_bytes_returns_write_position);
	RUN(reserve_exact_fit_succeeds_one_past_fails_erange);
	RUN(reserve_overflowing_size_max_fails_erange);
	RUN(reserve_on_view_fails_einval);
	RUN(reserve_gives_zeroed_memory_after_truncate);

	RUN(add_appends_bytes_in_order);
	RUN(add_zero_length_succeeds_even_without_room);
	RUN(add_past_max_fails_erange_and_appends_nothing);
	RUN(add_on_view_fails_einval);
	RUN(add_ibuf_appends_unread_part_and_keeps_source);
	RUN(add_ibuf_accepts_view_and_empty_source);
	RUN(add_ibuf_too_big_fails_erange);
	RUN(add_ibuf_to_itself_appends_unread_part);
	RUN(add_zero_appends_zero_bytes);

	RUN(add_n8_appends_one_byte);
	RUN(add_n8_rejects_value_above_uint8_max);
	RUN(add_n16_appends_big_endian);
	RUN(add_n16_rejects_value_above_uint16_max);
	RUN(add_n32_appends_big_endian);
	RUN(add_n32_rejects_value_above_uint32_max);
	RUN(add_n64_appends_big_endian_without_range_check);
	RUN(add_h16_appends_host_order);
	RUN(add_h32_appends_host_order);
	RUN(add_h64_appends_host_order_without_range_check);
	RUN(integer_adders_fail_erange_when_full);
	RUN(integer_adders_check_value_before_room);

	RUN(add_strbuf_pads_with_nul);
	RUN(add_strbuf_exact_fit_includes_terminator);
	RUN(add_strbuf_too_long_fails_eoverflow_keeping_reservation);
	RUN(add_strbuf_zero_length_fails_eoverflow);
	RUN(add_strbuf_without_room_fails_erange);

	RUN(seek_is_relative_to_read_position);
	RUN(seek_checks_bounds_and_overflow);
	RUN(seek_works_on_view);

	RUN(set_overwrites_in_place_relative_to_read_position);
	RUN(set_past_end_fails_erange_and_writes_nothing);
	RUN(set_zero_length_still_checks_position);
	RUN(set_on_view_writes_caller_memory);
	RUN(set_n8_n16_n32_n64_write_big_endian);
	RUN(set_h16_h32_h64_write_host_order);
	RUN(set_integers_reject_values_too_wide_before_position);
	RUN(set_integers_past_end_fail_erange);

	RUN(set_maxsize_lowers_the_limit);
	RUN(set_maxsize_above_current_fails_erange);
	RUN(set_maxsize_below_written_data_fails);
	RUN(set_maxsize_on_view_fails_einval);
	RUN(imsg_set_maxsize_adds_header_size);
	RUN(imsg_set_maxsize_rejects_above_uint32_max_minus_header);

	RUN(data_size_left_follow_read_and_write_positions);
	RUN(left_is_zero_for_views);
	RUN(truncate_shrinks_relative_to_read_position);
	RUN(truncate_grows_with_zeros_up_to_max);
	RUN(truncate_on_view_shrinks_but_cannot_grow);
	RUN(rewind_makes_consumed_bytes_readable_again);

	RUN(from_buffer_makes_read_only_view);
	RUN(from_buffer_of_nothing_is_empty_view);
	RUN(from_ibuf_peeks_without_consuming);
	RUN(from_ibuf_does_not_take_the_fd);

	RUN(get_copies_and_advances);
	RUN(get_short_fails_ebadmsg_and_consumes_nothing);
	RUN(get_ibuf_makes_view_of_next_bytes);
	RUN(get_ibuf_short_fails_ebadmsg_and_consumes_nothing);
	RUN(skip_advances_and_checks_length);
	RUN(get_n8_n16_n32_n64_convert_from_big_endian);
	RUN(get_h16_h32_h64_read_host_order);
	RUN(integer_getters_round_trip_with_adders);
	RUN(integer_getters_short_fail_ebadmsg_leaving_value);

	RUN(get_string_copies_and_terminates);
	RUN(get_string_stops_at_nul_but_consumes_len);
	RUN(get_string_zero_length_gives_empty_string);
	RUN(get_string_short_fails_ebadmsg);
	RUN(get_strbuf_copies_terminated_string);
	RUN(get_strbuf_unterminated_fails_eoverflow_but_consumes);
	RUN(get_strbuf_zero_length_fails_einval);
	RUN(get_strbuf_short_fails_ebadmsg);
	RUN(strbuf_round_trip);

	RUN(free_null_is_harmless_and_keeps_errno);
	RUN(free_preserves_errno);
	RUN(free_preserves_errno_when_close_fails);
	RUN(free_closes_attached_fd);

	RUN(fd_avail_reports_attached_fd);
	RUN(fd_get_transfers_ownership_to_caller);
	RUN(fd_get_without_fd_returns_minus_one);
	RUN(fd_set_replacing_closes_previous_fd_once);
	RUN(fd_set_negative_closes_and_clears);
	RUN(fd_free_after_get_leaves_fd_open);

	RUN(abort_check_tells_normal_exit_apart);
	RUN(free_of_view_aborts);
	RUN(close_of_view_aborts);
	RUN(push_of_view_aborts);
	RUN(fd_set_on_view_aborts);

	RUN(set_maxsize_below_written_fails_with_erange);
	RUN(lowered_maxsize_is_enforced_inside_allocated_memory);
	RUN(reserve_and_seek_of_zero_bytes_without_memory_return_a_pointer);
	RUN(add_strbuf_of_length_zero_fails_with_eoverflow_on_any_buffer);
	RUN(add_ibuf_of_a_buffer_into_itself_survives_growth);

	return h_done();
}
