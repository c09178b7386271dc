/*
 * Tests for ibuf queues and the write-only side of msgbuf (spec sections
 * 4 and 9): FIFO order, moving whole queues, freeing what they hold and
 * closing attached descriptors exactly once.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <imsg.h>

#include "harness.h"

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

/* A small ibuf holding the string s (without its NUL). */
static struct ibuf *
str_buf(const char *s)
{
	struct ibuf *b;
	size_t len = strlen(s);

	if ((b = ibuf_open(len)) == NULL)
		return NULL;
	if (ibuf_add(b, s, len) == -1) {
		ibuf_free(b);
		return NULL;
	}
	return b;
}

/* An ibuf holding s with the descriptor fd attached. */
static struct ibuf *
fd_buf(const char *s, int fd)
{
	struct ibuf *b;

	if ((b = str_buf(s)) != NULL)
		ibuf_fd_set(b, fd);
	return b;
}

/* Pop the head of q and check it holds s; free it. */
static void
pop_expect(struct ibufqueue *q, const char *s, const char *file, int line)
{
	struct ibuf *b;

	if ((b = ibufq_pop(q)) == NULL) {
		h_fail(file, line, "ibufq_pop returned NULL, want \"%s\"", s);
		return;
	}
	if (ibuf_size(b) != strlen(s) ||
	    memcmp(ibuf_data(b), s, strlen(s)) != 0)
		h_fail(file, line, "ibufq_pop gave \"%.*s\", want \"%s\"",
		    (int)ibuf_size(b), (char *)ibuf_data(b), s);
	ibuf_free(b);
}
#define POP_EXPECT(q, s)	pop_expect((q), (s), __FILE__, __LINE__)

/* Push a fresh ibuf holding s onto q. */
static int
push_str(struct ibufqueue *q, const char *s)
{
	struct ibuf *b;

	if ((b = str_buf(s)) == NULL)
		return -1;
	ibufq_push(q, b);
	return 0;
}

/* ---- ibufqueue ---- */

static void
ibufq_new_is_empty(void)
{
	struct ibufqueue *q;

	REQUIRE((q = ibufq_new()) != NULL);
	CHECK_UINT(ibufq_queuelen(q), ==, 0);
	CHECK_PTR(ibufq_pop(q), ==, NULL);
	CHECK_UINT(ibufq_queuelen(q), ==, 0);
	ibufq_free(q);
}

static void
ibufq_free_null_is_harmless(void)
{
	errno = 2345;
	ibufq_free(NULL);
	CHECK_INT(errno, ==, 2345);
}

static void
ibufq_push_pop_is_fifo(void)
{
	struct ibufqueue *q;
	struct ibuf *a, *b, *c;

	REQUIRE((q = ibufq_new()) != NULL);
	REQUIRE((a = str_buf("first")) != NULL);
	REQUIRE((b = str_buf("second")) != NULL);
	REQUIRE((c = str_buf("third")) != NULL);
	ibufq_push(q, a);
	CHECK_UINT(ibufq_queuelen(q), ==, 1);
	ibufq_push(q, b);
	CHECK_UINT(ibufq_queuelen(q), ==, 2);
	ibufq_push(q, c);
	CHECK_UINT(ibufq_queuelen(q), ==, 3);
	CHECK_PTR(ibufq_pop(q), ==, a);
	CHECK_UINT(ibufq_queuelen(q), ==, 2);
	CHECK_PTR(ibufq_pop(q), ==, b);
	CHECK_UINT(ibufq_queuelen(q), ==, 1);
	CHECK_PTR(ibufq_pop(q), ==, c);
	CHECK_UINT(ibufq_queuelen(q), ==, 0);
	CHECK_PTR(ibufq_pop(q), ==, NULL);
	CHECK_UINT(ibufq_queuelen(q), ==, 0);
	/* The buffers come back untouched. */
	CHECK_UINT(ibuf_size(a), ==, 5);
	CHECK_MEM(ibuf_data(b), "second", 6);
	CHECK_MEM(ibuf_data(c), "third", 5);
	ibuf_free(a);
	ibuf_free(b);
	ibuf_free(c);
	ibufq_free(q);
}

static void
ibufq_push_keeps_read_position_and_fd(void)
{
	struct ibufqueue *q;
	struct ibuf *b;
	int fd;

	REQUIRE((q = ibufq_new()) != NULL);
	fd = open_fd();
	REQUIRE((b = fd_buf("header+body", fd)) != NULL);
	CHECK_INT(ibuf_skip(b, 7), ==, 0);
	ibufq_push(q, b);
	CHECK_PTR(ibufq_pop(q), ==, b);
	CHECK_UINT(ibuf_size(b), ==, 4);
	CHECK_MEM(ibuf_data(b), "body", 4);
	CHECK_INT(b->fd, ==, fd);
	CHECK(h_fd_is_open(fd));
	ibuf_free(b);
	CHECK(!h_fd_is_open(fd));
	ibufq_free(q);
}

static void
ibufq_refills_after_being_emptied(void)
{
	struct ibufqueue *q;

	REQUIRE((q = ibufq_new()) != NULL);
	REQUIRE(push_str(q, "a") == 0);
	POP_EXPECT(q, "a");
	CHECK_PTR(ibufq_pop(q), ==, NULL);
	/* The tail must have been reset when the queue ran empty. */
	REQUIRE(push_str(q, "b") == 0);
	REQUIRE(push_str(q, "c") == 0);
	CHECK_UINT(ibufq_queuelen(q), ==, 2);
	POP_EXPECT(q, "b");
	REQUIRE(push_str(q, "d") == 0);
	POP_EXPECT(q, "c");
	POP_EXPECT(q, "d");
	CHECK_PTR(ibufq_pop(q), ==, NULL);
	CHECK_UINT(ibufq_queuelen(q), ==, 0);
	ibufq_free(q);
}

static void
ibufq_holds_empty_ibufs(void)
{
	struct ibufqueue *q;
	struct ibuf *b;

	REQUIRE((q = ibufq_new()) != NULL);
	REQUIRE((b = ibuf_open(0)) != NULL);
	ibufq_push(q, b);
	REQUIRE(push_str(q, "x") == 0);
	CHECK_UINT(ibufq_queuelen(q), ==, 2);
	CHECK_PTR(ibufq_pop(q), ==, b);
	POP_EXPECT(q, "x");
	ibuf_free(b);
	ibufq_free(q);
}

static void
ibufq_concat_moves_all_and_empties_source(void)
{
	struct ibufqueue *to, *from;

	REQUIRE((to = ibufq_new()) != NULL);
	REQUIRE((from = ibufq_new()) != NULL);
	REQUIRE(push_str(to, "a") == 0);
	REQUIRE(push_str(to, "b") == 0);
	REQUIRE(push_str(from, "c") == 0);
	REQUIRE(push_str(from, "d") == 0);
	REQUIRE(push_str(from, "e") == 0);
	ibufq_concat(to, from);
	CHECK_UINT(ibufq_queuelen(to), ==, 5);
	CHECK_UINT(ibufq_queuelen(from), ==, 0);
	CHECK_PTR(ibufq_pop(from), ==, NULL);
	/* Both queues stay usable, with correct tails. */
	REQUIRE(push_str(to, "f") == 0);
	REQUIRE(push_str(from, "z") == 0);
	CHECK_UINT(ibufq_queuelen(to), ==, 6);
	CHECK_UINT(ibufq_queuelen(from), ==, 1);
	POP_EXPECT(to, "a");
	POP_EXPECT(to, "b");
	POP_EXPECT(to, "c");
	POP_EXPECT(to, "d");
	POP_EXPECT(to, "e");
	POP_EXPECT(to, "f");
	CHECK_PTR(ibufq_pop(to), ==, NULL);
	POP_EXPECT(from, "z");
	CHECK_PTR(ibufq_pop(from), ==, NULL);
	ibufq_free(to);
	ibufq_free(from);
}

static void
ibufq_concat_into_empty_queue(void)
{
	struct ibufqueue *to, *from;

	REQUIRE((to = ibufq_new()) != NULL);
	REQUIRE((from = ibufq_new()) != NULL);
	/* Emptied by pops rather than new: the tail must still be right. */
	REQUIRE(push_str(to, "old") == 0);
	POP_EXPECT(to, "old");
	REQUIRE(push_str(from, "a") == 0);
	REQUIRE(push_str(from, "b") == 0);
	ibufq_concat(to, from);
	CHECK_UINT(ibufq_queuelen(to), ==, 2);
	CHECK_UINT(ibufq_queuelen(from), ==, 0);
	REQUIRE(push_str(to, "c") == 0);
	POP_EXPECT(to, "a");
	POP_EXPECT(to, "b");
	POP_EXPECT(to, "c");
	CHECK_PTR(ibufq_pop(to), ==, NULL);
	ibufq_free(to);
	ibufq_free(from);
}

static void
ibufq_concat_of_empty_queue_changes_nothing(void)
{
	struct ibufqueue *to, *from;

	REQUIRE((to = ibufq_new()) != NULL);
	REQUIRE((from = ibufq_new()) != NULL);
	ibufq_concat(to, from);
	CHECK_UINT(ibufq_queuelen(to), ==, 0);
	REQUIRE(push_str(to, "a") == 0);
	/* A source emptied by pops. */
	REQUIRE(push_str(from, "gone") == 0);
	POP_EXPECT(from, "gone");
	ibufq_concat(to, from);
	CHECK_UINT(ibufq_queuelen(to), ==, 1);
	CHECK_UINT(ibufq_queuelen(from), ==, 0);
	REQUIRE(push_str(to, "b") == 0);
	POP_EXPECT(to, "a");
	POP_EXPECT(to, "b");
	CHECK_PTR(ibufq_pop(to), ==, NULL);
	ibufq_free(to);
	ibufq_free(from);
}

static void
ibufq_flush_frees_all_and_closes_fds_once(void)
{
	struct ibufqueue *q;
	struct ibuf *b;
	int fd1, fd2, r1, r2;

	REQUIRE((q = ibufq_new()) != NULL);
	fd1 = open_fd();
	fd2 = open_fd();
	REQUIRE((b = fd_buf("one", fd1)) != NULL);
	ibufq_push(q, b);
	REQUIRE(push_str(q, "two") == 0);
	REQUIRE((b = fd_buf("three", fd2)) != NULL);
	ibufq_push(q, b);
	CHECK_UINT(ibufq_queuelen(q), ==, 3);
	ibufq_flush(q);
	CHECK_UINT(ibufq_queuelen(q), ==, 0);
	CHECK_PTR(ibufq_pop(q), ==, NULL);
	CHECK(!h_fd_is_open(fd1));
	CHECK(!h_fd_is_open(fd2));
	/* Take the numbers again; nothing below may close them. */
	r1 = open_fd();
	r2 = open_fd();
	CHECK_INT(r1, ==, fd1);
	CHECK_INT(r2, ==, fd2);
	ibufq_flush(q);
	REQUIRE(push_str(q, "again") == 0);
	CHECK_UINT(ibufq_queuelen(q), ==, 1);
	POP_EXPECT(q, "again");
	ibufq_free(q);
	CHECK(h_fd_is_open(r1));
	CHECK(h_fd_is_open(r2));
	close(r1);
	close(r2);
}

static void
ibufq_free_frees_queued_and_closes_fds(void)
{
	struct ibufqueue *q;
	struct ibuf *b;
	int fd1, fd2;

	REQUIRE((q = ibufq_new()) != NULL);
	fd1 = open_fd();
	fd2 = open_fd();
	REQUIRE((b = fd_buf("one", fd1)) != NULL);
	ibufq_push(q, b);
	REQUIRE(push_str(q, "two") == 0);
	REQUIRE((b = fd_buf("three", fd2)) != NULL);
	ibufq_push(q, b);
	ibufq_free(q);
	CHECK(!h_fd_is_open(fd1));
	CHECK(!h_fd_is_open(fd2));
}

static void
ibufq_pop_hands_fd_ownership_to_caller(void)
{
	struct ibufqueue *q;
	struct ibuf *b;
	int fd;

	REQUIRE((q = ibufq_new()) != NULL);
	fd = open_fd();
	REQUIRE((b = fd_buf("x", fd)) != NULL);
	ibufq_push(q, b);
	CHECK_PTR(ibufq_pop(q), ==, b);
	ibufq_free(q);
	CHECK(h_fd_is_open(fd));	/* popped: no longer the queue's */
	CHECK_INT(b->fd, ==, fd);
	ibuf_free(b);
	CHECK(!h_fd_is_open(fd));
}

/* ---- msgbuf, write-only ---- */

static struct ibuf *
dummy_readhdr(struct ibuf *hdr, void *arg, int *fd)
{
	(void)hdr;
	(void)arg;
	(void)fd;
	errno = ENOSYS;
	return NULL;
}

static void
msgbuf_new_is_empty(void)
{
	struct msgbuf *m;

	REQUIRE((m = msgbuf_new()) != NULL);
	CHECK_UINT(msgbuf_queuelen(m), ==, 0);
	CHECK_PTR(msgbuf_get(m), ==, NULL);
	msgbuf_free(m);
}

static void
msgbuf_free_null_is_harmless(void)
{
	errno = 5678;
	msgbuf_free(NULL);
	CHECK_INT(errno, ==, 5678);
}

static void
ibuf_close_queues_one_per_ibuf(void)
{
	struct msgbuf *m;
	struct ibuf *b;

	REQUIRE((m = msgbuf_new()) != NULL);
	REQUIRE((b = str_buf("a")) != NULL);
	ibuf_close(m, b);
	CHECK_UINT(msgbuf_queuelen(m), ==, 1);
	REQUIRE((b = str_buf("bb")) != NULL);
	ibuf_close(m, b);
	REQUIRE((b = ibuf_open(0)) != NULL);
	ibuf_close(m, b);
	CHECK_UINT(msgbuf_queuelen(m), ==, 3);
	msgbuf_free(m);
}

static void
msgbuf_get_on_write_only_returns_null(void)
{
	struct msgbuf *m;
	struct ibuf *b;

	REQUIRE((m = msgbuf_new()) != NULL);
	REQUIRE((b = str_buf("queued for writing")) != NULL);
	ibuf_close(m, b);
	/* Write-queue contents are not received messages. */
	CHECK_PTR(msgbuf_get(m), ==, NULL);
	CHECK_UINT(msgbuf_queuelen(m), ==, 1);
	msgbuf_free(m);
}

static void
read_on_write_only_msgbuf_fails_einval(void)
{
	struct msgbuf *m;
	char junk[32];
	int sp[2];

	REQUIRE((m = msgbuf_new()) != NULL);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	/* Non-blocking, so a read that should not happen cannot hang. */
	CHECK_INT(fcntl(sp[0], F_SETFL, O_NONBLOCK), ==, 0);
	CHECK_INT(write(sp[1], "0123456789abcdef", 16), ==, 16);
	CHECK_FAIL(ibuf_read(sp[0], m), -1, EINVAL);
	CHECK_FAIL(msgbuf_read(sp[0], m), -1, EINVAL);
	CHECK_PTR(msgbuf_get(m), ==, NULL);
	/* Nothing was taken from the socket. */
	CHECK_INT(recv(sp[0], junk, sizeof(junk), MSG_DONTWAIT), ==, 16);
	close(sp[0]);
	close(sp[1]);
	msgbuf_free(m);
}

static void
msgbuf_concat_appends_whole_queue(void)
{
	struct msgbuf *m;
	struct ibufqueue *q;
	struct ibuf *b;

	REQUIRE((m = msgbuf_new()) != NULL);
	REQUIRE((q = ibufq_new()) != NULL);
	REQUIRE((b = str_buf("head")) != NULL);
	ibuf_close(m, b);
	REQUIRE(push_str(q, "x") == 0);
	REQUIRE(push_str(q, "y") == 0);
	msgbuf_concat(m, q);
	CHECK_UINT(msgbuf_queuelen(m), ==, 3);
	CHECK_UINT(ibufq_queuelen(q), ==, 0);
	CHECK_PTR(ibufq_pop(q), ==, NULL);
	/* An empty queue adds nothing; the source stays usable. */
	msgbuf_concat(m, q);
	CHECK_UINT(msgbuf_queuelen(m), ==, 3);
	REQUIRE(push_str(q, "z") == 0);
	CHECK_UINT(ibufq_queuelen(q), ==, 1);
	POP_EXPECT(q, "z");
	REQUIRE((b = str_buf("tail")) != NULL);
	ibuf_close(m, b);
	CHECK_UINT(msgbuf_queuelen(m), ==, 4);
	ibufq_free(q);
	msgbuf_free(m);
}

static void
msgbuf_concat_preserves_order_on_the_wire(void)
{
	struct msgbuf *m;
	struct ibufqueue *q;
	struct ibuf *b;
	char out[32];
	ssize_t n;
	int sp[2];

	/* The queue order is only visible by writing it out. */
	REQUIRE((m = msgbuf_new()) != NULL);
	REQUIRE((q = ibufq_new()) != NULL);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	REQUIRE((b = str_buf("ab")) != NULL);
	ibuf_close(m, b);
	REQUIRE(push_str(q, "cd") == 0);
	REQUIRE(push_str(q, "ef") == 0);
	msgbuf_concat(m, q);
	REQUIRE((b = str_buf("gh")) != NULL);
	ibuf_close(m, b);
	CHECK_INT(ibuf_write(sp[1], m), ==, 0);
	CHECK_UINT(msgbuf_queuelen(m), ==, 0);
	n = recv(sp[0], out, sizeof(out), MSG_DONTWAIT);
	CHECK_INT(n, ==, 8);
	if (n == 8)
		CHECK_MEM(out, "abcdefgh", 8);
	close(sp[0]);
	close(sp[1]);
	ibufq_free(q);
	msgbuf_free(m);
}

static void
msgbuf_clear_frees_queue_and_closes_fds_once(void)
{
	struct msgbuf *m;
	struct ibuf *b;
	int fd1, fd2, r1, r2;

	REQUIRE((m = msgbuf_new()) != NULL);
	fd1 = open_fd();
	fd2 = open_fd();
	REQUIRE((b = fd_buf("one", fd1)) != NULL);
	ibuf_close(m, b);
	REQUIRE((b = str_buf("two")) != NULL);
	ibuf_close(m, b);
	REQUIRE((b = fd_buf("three", fd2)) != NULL);
	ibuf_close(m, b);
	CHECK_UINT(msgbuf_queuelen(m), ==, 3);
	msgbuf_clear(m);
	CHECK_UINT(msgbuf_queuelen(m), ==, 0);
	CHECK(!h_fd_is_open(fd1));
	CHECK(!h_fd_is_open(fd2));
	r1 = open_fd();
	r2 = open_fd();
	CHECK_INT(r1, ==, fd1);
	CHECK_INT(r2, ==, fd2);
	/* Clearing again, and reusing the msgbuf, touches none of them. */
	msgbuf_clear(m);
	CHECK_UINT(msgbuf_queuelen(m), ==, 0);
	REQUIRE((b = str_buf("four")) != NULL);
	ibuf_close(m, b);
	CHECK_UINT(msgbuf_queuelen(m), ==, 1);
	msgbuf_free(m);
	CHECK(h_fd_is_open(r1));
	CHECK(h_fd_is_open(r2));
	close(r1);
	close(r2);
}

static void
msgbuf_free_closes_fds_of_queued_ibufs(void)
{
	struct msgbuf *m;
	struct ibufqueue *q;
	struct ibuf *b;
	int fd1, fd2;

	REQUIRE((m = msgbuf_new()) != NULL);
	REQUIRE((q = ibufq_new()) != NULL);
	fd1 = open_fd();
	fd2 = open_fd();
	REQUIRE((b = fd_buf("one", fd1)) != NULL);
	ibuf_close(m, b);
	REQUIRE((b = fd_buf("two", fd2)) != NULL);
	ibufq_push(q, b);
	msgbuf_concat(m, q);
	ibufq_free(q);
	CHECK(h_fd_is_open(fd2));	/* moved to m, not freed with q */
	msgbuf_free(m);
	CHECK(!h_fd_is_open(fd1));
	CHECK(!h_fd_is_open(fd2));
}

static void
msgbuf_new_reader_rejects_bad_header_size(void)
{
	CHECK_NULL_ERRNO(msgbuf_new_reader(0, dummy_readhdr, NULL), EINVAL);
	CHECK_NULL_ERRNO(msgbuf_new_reader(IBUF_READ_SIZE / 2 + 1,
	    dummy_readhdr, NULL), EINVAL);
	CHECK_NULL_ERRNO(msgbuf_new_reader(32768, dummy_readhdr, NULL),
	    EINVAL);
	CHECK_NULL_ERRNO(msgbuf_new_reader(IBUF_READ_SIZE, dummy_readhdr,
	    NULL), EINVAL);
	CHECK_NULL_ERRNO(msgbuf_new_reader(SIZE_MAX, dummy_readhdr, NULL),
	    EINVAL);
}

static void
msgbuf_new_reader_accepts_sizes_up_to_half_read_size(void)
{
	struct msgbuf *m;
	int arg;

	REQUIRE((m = msgbuf_new_reader(32767, dummy_readhdr, &arg)) != NULL);
	CHECK_UINT(msgbuf_queuelen(m), ==, 0);
	CHECK_PTR(msgbuf_get(m), ==, NULL);
	msgbuf_free(m);
	REQUIRE((m = msgbuf_new_reader(1, dummy_readhdr, NULL)) != NULL);
	CHECK_PTR(msgbuf_get(m), ==, NULL);
	msgbuf_free(m);
	REQUIRE((m = msgbuf_new_reader(IMSG_HEADER_SIZE, dummy_readhdr,
	    NULL)) != NULL);
	msgbuf_free(m);
}

/*
 * ---- differences from upstream ----------------------------------------
 * ibuf_read and ibuf_write use recvmsg and sendmsg on a socket, but, as
 * upstream's readv and writev do, they work on a pipe too (ibuf_add(3),
 * COMPATIBILITY).
 */

/* Messages of a 4-byte length in network order and that many bytes. */
static struct ibuf *
pipe_readhdr(struct ibuf *hdr, void *arg, int *fd)
{
	uint32_t len;

	(void)arg;
	(void)fd;
	if (ibuf_get_n32(hdr, &len) == -1)
		return NULL;
	return ibuf_open(4 + (size_t)len);
}

static void
queue_lp(struct msgbuf *w, const char *s)
{
	struct ibuf *b;

	if ((b = ibuf_open(4 + strlen(s))) == NULL ||
	    ibuf_add_n32(b, strlen(s)) == -1 || ibuf_add(b, s, strlen(s)) == -1)
		h_fail(__FILE__, __LINE__, "building a message: %s",
		    strerror(errno));
	if (b != NULL)
		ibuf_close(w, b);
}

/* Read the next message from r and compare its payload with s. */
static void
check_lp(struct msgbuf *r, const char *s)
{
	struct ibuf *b;
	uint32_t len;

	if ((b = msgbuf_get(r)) == NULL) {
		h_fail(__FILE__, __LINE__, "no message for \"%s\"", s);
		return;
	}
	CHECK_INT(ibuf_get_n32(b, &len), ==, 0);
	CHECK_UINT(len, ==, strlen(s));
	CHECK_UINT(ibuf_size(b), ==, strlen(s));
	if (ibuf_size(b) == strlen(s))
		CHECK_MEM(ibuf_data(b), s, strlen(s));
	ibuf_free(b);
}

static void
ibuf_write_and_ibuf_read_work_on_a_pipe(void)
{
	struct msgbuf *w, *r;
	struct ibuf *b;
	int p[2];

	if (pipe(p) == -1) {
		h_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
		return;
	}
	w = msgbuf_new();
	r = msgbuf_new_reader(4, pipe_readhdr, NULL);
	if (w == NULL || r == NULL) {
		h_fail(__FILE__, __LINE__, "msgbuf: %s", strerror(errno));
		goto out;
	}
	queue_lp(w, "through");
	queue_lp(w, "a pipe");
	CHECK_INT(ibuf_write(p[1], w), ==, 0);
	CHECK_UINT(msgbuf_queuelen(w), ==, 0);
	CHECK_INT(ibuf_read(p[0], r), ==, 1);
	check_lp(r, "through");
	check_lp(r, "a pipe");
	CHECK_PTR(msgbuf_get(r), ==, NULL);

	/* msgbuf_write and msgbuf_read too, while no descriptor goes along. */
	queue_lp(w, "again");
	CHECK_INT(msgbuf_write(p[1], w), ==, 0);
	CHECK_INT(msgbuf_read(p[0], r), ==, 1);
	check_lp(r, "again");

	/* Passing a descriptor is what needs a socket. */
	if ((b = ibuf_open(4)) != NULL) {
		CHECK_INT(ibuf_add_n32(b, 0), ==, 0);
		ibuf_fd_set(b, open_fd());
		ibuf_close(w, b);
		CHECK_FAIL(msgbuf_write(p[1], w), -1, ENOTSOCK);
	}
out:
	msgbuf_free(w);
	msgbuf_free(r);
	close(p[0]);
	close(p[1]);
}

int
main(void)
{
	RUN(ibufq_new_is_empty);
	RUN(ibufq_free_null_is_harmless);
	RUN(ibufq_push_pop_is_fifo);
	RUN(ibufq_push_keeps_read_position_and_fd);
	RUN(ibufq_refills_after_being_emptied);
	RUN(ibufq_holds_empty_ibufs);
	RUN(ibufq_concat_moves_all_and_empties_source);
	RUN(ibufq_concat_into_empty_queue);
	RUN(ibufq_concat_of_empty_queue_changes_nothing);
	RUN(ibufq_flush_frees_all_and_closes_fds_once);
	RUN(ibufq_free_frees_queued_and_closes_fds);
	RUN(ibufq_pop_hands_fd_ownership_to_caller);

	RUN(msgbuf_new_is_empty);
	RUN(msgbuf_free_null_is_harmless);
	RUN(ibuf_close_queues_one_per_ibuf);
	RUN(msgbuf_get_on_write_only_returns_null);
	RUN(read_on_write_only_msgbuf_fails_einval);
	RUN(msgbuf_concat_appends_whole_queue);
	RUN(msgbuf_concat_preserves_order_on_the_wire);
	RUN(msgbuf_clear_frees_queue_and_closes_fds_once);
	RUN(msgbuf_free_closes_fds_of_queued_ibufs);
	RUN(msgbuf_new_reader_rejects_bad_header_size);
	RUN(msgbuf_new_reader_accepts_sizes_up_to_half_read_size);

	RUN(ibuf_write_and_ibuf_read_work_on_a_pipe);

	return h_done();
}
