/*
 * The ABI libimsg promises: upstream's struct layouts on LP64, and every
 * API function with upstream's exact type (a pointer of that type must
 * accept its address without a cast or a warning under -Werror).
 */
#include <sys/types.h>
#include <sys/uio.h>
#include <stddef.h>

#include "imsg.h"
#include "harness.h"

static void
struct_layouts_match_upstream_on_lp64(void)
{
	if (sizeof(void *) != 8 || sizeof(size_t) != 8) {
		printf("# SKIP: not an LP64 platform\n");
		return;
	}
	CHECK_UINT(sizeof(struct ibuf), ==, 64);
	CHECK_UINT(offsetof(struct ibuf, entry), ==, 0);
	CHECK_UINT(offsetof(struct ibuf, buf), ==, 16);
	CHECK_UINT(offsetof(struct ibuf, size), ==, 24);
	CHECK_UINT(offsetof(struct ibuf, max), ==, 32);
	CHECK_UINT(offsetof(struct ibuf, wpos), ==, 40);
	CHECK_UINT(offsetof(struct ibuf, rpos), ==, 48);
	CHECK_UINT(offsetof(struct ibuf, fd), ==, 56);
	CHECK_UINT(sizeof(struct imsgbuf), ==, 24);
	CHECK_UINT(offsetof(struct imsgbuf, w), ==, 0);
	CHECK_UINT(offsetof(struct imsgbuf, pid), ==, 8);
	CHECK_UINT(offsetof(struct imsgbuf, maxsize), ==, 12);
	CHECK_UINT(offsetof(struct imsgbuf, fd), ==, 16);
	CHECK_UINT(offsetof(struct imsgbuf, flags), ==, 20);
	CHECK_UINT(sizeof(struct imsg_hdr), ==, 16);
	CHECK_UINT(offsetof(struct imsg_hdr, type), ==, 0);
	CHECK_UINT(offsetof(struct imsg_hdr, len), ==, 4);
	CHECK_UINT(offsetof(struct imsg_hdr, peerid), ==, 8);
	CHECK_UINT(offsetof(struct imsg_hdr, pid), ==, 12);
	CHECK_UINT(sizeof(struct imsg), ==, 32);
	CHECK_UINT(offsetof(struct imsg, hdr), ==, 0);
	CHECK_UINT(offsetof(struct imsg, data), ==, 16);
	CHECK_UINT(offsetof(struct imsg, buf), ==, 24);
}

static void
constants_match_upstream(void)
{
	CHECK_UINT(IBUF_READ_SIZE, ==, 65535);
	CHECK_UINT(IMSG_HEADER_SIZE, ==, 16);
	CHECK_UINT(MAX_IMSGSIZE, ==, 16384);
}

static void
every_api_function_has_upstream_type(void)
{
	{ struct ibuf * (*fp)(size_t) = ibuf_open; CHECK(fp != NULL); }
	{ struct ibuf * (*fp)(size_t, size_t) = ibuf_dynamic; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, const void *, size_t) = ibuf_add; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, const struct ibuf *) = ibuf_add_ibuf; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t) = ibuf_add_zero; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t) = ibuf_add_n8; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t) = ibuf_add_n16; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t) = ibuf_add_n32; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t) = ibuf_add_n64; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t) = ibuf_add_h16; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t) = ibuf_add_h32; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t) = ibuf_add_h64; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, const char *, size_t) = ibuf_add_strbuf; CHECK(fp != NULL); }
	{ void * (*fp)(struct ibuf *, size_t) = ibuf_reserve; CHECK(fp != NULL); }
	{ void * (*fp)(struct ibuf *, size_t, size_t) = ibuf_seek; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, const void *, size_t) = ibuf_set; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, uint64_t) = ibuf_set_n8; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, uint64_t) = ibuf_set_n16; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, uint64_t) = ibuf_set_n32; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, uint64_t) = ibuf_set_n64; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, uint64_t) = ibuf_set_h16; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, uint64_t) = ibuf_set_h32; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, uint64_t) = ibuf_set_h64; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t) = ibuf_set_maxsize; CHECK(fp != NULL); }
	{ void * (*fp)(const struct ibuf *) = ibuf_data; CHECK(fp != NULL); }
	{ size_t (*fp)(const struct ibuf *) = ibuf_size; CHECK(fp != NULL); }
	{ size_t (*fp)(const struct ibuf *) = ibuf_left; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t) = ibuf_truncate; CHECK(fp != NULL); }
	{ void (*fp)(struct ibuf *) = ibuf_rewind; CHECK(fp != NULL); }
	{ void (*fp)(struct msgbuf *, struct ibuf *) = ibuf_close; CHECK(fp != NULL); }
	{ void (*fp)(struct ibuf *, void *, size_t) = ibuf_from_buffer; CHECK(fp != NULL); }
	{ void (*fp)(struct ibuf *, const struct ibuf *) = ibuf_from_ibuf; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, void *, size_t) = ibuf_get; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t, struct ibuf *) = ibuf_get_ibuf; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint8_t *) = ibuf_get_n8; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint16_t *) = ibuf_get_n16; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint32_t *) = ibuf_get_n32; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t *) = ibuf_get_n64; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint16_t *) = ibuf_get_h16; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint32_t *) = ibuf_get_h32; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, uint64_t *) = ibuf_get_h64; CHECK(fp != NULL); }
	{ char * (*fp)(struct ibuf *, size_t) = ibuf_get_string; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, char *, size_t) = ibuf_get_strbuf; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t) = ibuf_skip; CHECK(fp != NULL); }
	{ void (*fp)(struct ibuf *) = ibuf_free; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *) = ibuf_fd_avail; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *) = ibuf_fd_get; CHECK(fp != NULL); }
	{ void (*fp)(struct ibuf *, int) = ibuf_fd_set; CHECK(fp != NULL); }
	{ struct msgbuf * (*fp)(void) = msgbuf_new; CHECK(fp != NULL); }
	{ struct msgbuf * (*fp)(size_t, struct ibuf *(*)(struct ibuf *, void *, int *), void *) = msgbuf_new_reader; CHECK(fp != NULL); }
	{ void (*fp)(struct msgbuf *) = msgbuf_free; CHECK(fp != NULL); }
	{ void (*fp)(struct msgbuf *) = msgbuf_clear; CHECK(fp != NULL); }
	{ uint32_t (*fp)(struct msgbuf *) = msgbuf_queuelen; CHECK(fp != NULL); }
	{ int (*fp)(int, struct msgbuf *) = ibuf_write; CHECK(fp != NULL); }
	{ int (*fp)(int, struct msgbuf *) = msgbuf_write; CHECK(fp != NULL); }
	{ int (*fp)(int, struct msgbuf *) = ibuf_read; CHECK(fp != NULL); }
	{ int (*fp)(int, struct msgbuf *) = msgbuf_read; CHECK(fp != NULL); }
	{ struct ibuf * (*fp)(struct msgbuf *) = msgbuf_get; CHECK(fp != NULL); }
	{ void (*fp)(struct msgbuf *, struct ibufqueue *) = msgbuf_concat; CHECK(fp != NULL); }
	{ struct ibufqueue * (*fp)(void) = ibufq_new; CHECK(fp != NULL); }
	{ void (*fp)(struct ibufqueue *) = ibufq_free; CHECK(fp != NULL); }
	{ struct ibuf * (*fp)(struct ibufqueue *) = ibufq_pop; CHECK(fp != NULL); }
	{ void (*fp)(struct ibufqueue *, struct ibuf *) = ibufq_push; CHECK(fp != NULL); }
	{ uint32_t (*fp)(struct ibufqueue *) = ibufq_queuelen; CHECK(fp != NULL); }
	{ void (*fp)(struct ibufqueue *, struct ibufqueue *) = ibufq_concat; CHECK(fp != NULL); }
	{ void (*fp)(struct ibufqueue *) = ibufq_flush; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *, int) = imsgbuf_init; CHECK(fp != NULL); }
	{ void (*fp)(struct imsgbuf *) = imsgbuf_allow_fdpass; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *, uint32_t) = imsgbuf_set_maxsize; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *) = imsgbuf_read; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *) = imsgbuf_write; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *) = imsgbuf_flush; CHECK(fp != NULL); }
	{ void (*fp)(struct imsgbuf *) = imsgbuf_clear; CHECK(fp != NULL); }
	{ uint32_t (*fp)(struct imsgbuf *) = imsgbuf_queuelen; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *, struct imsg *) = imsgbuf_get; CHECK(fp != NULL); }
	{ ssize_t (*fp)(struct imsgbuf *, struct imsg *) = imsg_get; CHECK(fp != NULL); }
	{ int (*fp)(struct ibufqueue *, struct imsg *) = imsg_ibufq_pop; CHECK(fp != NULL); }
	{ void (*fp)(struct ibufqueue *, struct imsg *) = imsg_ibufq_push; CHECK(fp != NULL); }
	{ int (*fp)(struct imsg *, struct ibuf *) = imsg_get_ibuf; CHECK(fp != NULL); }
	{ int (*fp)(struct imsg *, void *, size_t) = imsg_get_data; CHECK(fp != NULL); }
	{ int (*fp)(struct imsg *, void *, size_t) = imsg_get_buf; CHECK(fp != NULL); }
	{ int (*fp)(struct imsg *, char *, size_t) = imsg_get_strbuf; CHECK(fp != NULL); }
	{ int (*fp)(struct imsg *) = imsg_get_fd; CHECK(fp != NULL); }
	{ uint32_t (*fp)(struct imsg *) = imsg_get_id; CHECK(fp != NULL); }
	{ size_t (*fp)(struct imsg *) = imsg_get_len; CHECK(fp != NULL); }
	{ pid_t (*fp)(struct imsg *) = imsg_get_pid; CHECK(fp != NULL); }
	{ uint32_t (*fp)(struct imsg *) = imsg_get_type; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *, struct imsg *) = imsg_forward; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *, uint32_t, uint32_t, pid_t, int, const void *, size_t) = imsg_compose; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *, uint32_t, uint32_t, pid_t, int, const struct iovec *, int) = imsg_composev; CHECK(fp != NULL); }
	{ int (*fp)(struct imsgbuf *, uint32_t, uint32_t, pid_t, struct ibuf *) = imsg_compose_ibuf; CHECK(fp != NULL); }
	{ struct ibuf * (*fp)(struct imsgbuf *, uint32_t, uint32_t, pid_t, size_t) = imsg_create; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, const void *, size_t) = imsg_add; CHECK(fp != NULL); }
	{ void (*fp)(struct imsgbuf *, struct ibuf *) = imsg_close; CHECK(fp != NULL); }
	{ void (*fp)(struct imsg *) = imsg_free; CHECK(fp != NULL); }
	{ int (*fp)(struct ibuf *, size_t) = imsg_set_maxsize; CHECK(fp != NULL); }
}

int
main(void)
{
	RUN(struct_layouts_match_upstream_on_lp64);
	RUN(constants_match_upstream);
	RUN(every_api_function_has_upstream_type);
	return h_done();
}
