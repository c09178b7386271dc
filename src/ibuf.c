/*
 * The buffer layer: struct ibuf creation, growth, writing, reading,
 * descriptors and release.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imsg-private.h"

/* A valid address for a zero-byte range of a buffer with no memory. */
static unsigned char	ibuf_empty[1];

void
libimsg__wipe(void *p, size_t len)
{
	if (p == NULL || len == 0)
		return;
#if defined(__GNUC__) || defined(__clang__)
	/*
	 * Most messages are small, and a plain memset is the fastest way to
	 * zero them.  The empty asm claims to read the memory, so the
	 * compiler cannot drop the stores as dead.
	 */
	memset(p, 0, len);
	__asm__ __volatile__("" : : "r"(p) : "memory");
#elif defined(HAVE_EXPLICIT_BZERO)
	explicit_bzero(p, len);
#else
	{
		/* A call through a volatile pointer cannot be optimised away. */
		static void *(*const volatile do_memset)(void *, int, size_t) =
		    memset;
		do_memset(p, 0, len);
	}
#endif
}

void
libimsg__ibuf_view_abort(const char *what)
{
	fprintf(stderr, "libimsg: %s on a view ibuf (not owned memory)\n",
	    what);
	abort();
}

static int
ibuf_is_view(const struct ibuf *b)
{
	return b->fd == IBUF_FD_VIEW;
}

struct ibuf *
ibuf_open(size_t len)
{
	struct ibuf *b;

	if ((b = libimsg__ibuf_alloc(len, len)) == NULL)
		return NULL;
	if (len > 0)
		memset(b->buf, 0, len);
	return b;
}

struct ibuf *
ibuf_dynamic(size_t len, size_t max)
{
	struct ibuf *b;

	if (max == 0 || max < len) {
		errno = EINVAL;
		return NULL;
	}
	if ((b = libimsg__ibuf_alloc(len, max)) == NULL)
		return NULL;
	if (len > 0)
		memset(b->buf, 0, len);
	return b;
}

/* Is the storage of box a malloc of its own? */
static int
ibuf_box_heapbuf(struct ibuf_box *box)
{
	return box->ib.buf != NULL && box->ib.buf != ibuf_box_inline(box);
}

/* Move the contents to separate storage of at least need bytes. */
static int
ibuf_grow(struct ibuf *b, size_t need)
{
	struct ibuf_box *box = ibuf_box(b);
	unsigned char *nbuf;
	size_t ncap;

	/* Double, so a buffer built by many small adds is not quadratic. */
	ncap = box->cap > SIZE_MAX / 2 ? need : box->cap * 2;
	if (ncap < need)
		ncap = need;
	if (ncap > b->max)
		ncap = b->max;
	if ((nbuf = malloc(ncap)) == NULL)
		return -1;
	if (b->wpos > 0)
		memcpy(nbuf, b->buf, b->wpos);
	libimsg__wipe(b->buf, b->size);
	if (ibuf_box_heapbuf(box))
		free(b->buf);
	b->buf = nbuf;
	box->cap = ncap;
	return 0;
}

/*
 * Make room for len more bytes and return where they go, without
 * initialising them.  Growth keeps size equal to the bytes handed out so
 * far, as upstream does; the box tracks the real capacity.
 */
void *
libimsg__ibuf_reserve_raw(struct ibuf *b, size_t len)
{
	size_t need;

	if (len > SIZE_MAX - b->wpos) {
		errno = ERANGE;
		return NULL;
	}
	if (ibuf_is_view(b)) {
		errno = EINVAL;
		return NULL;
	}
	need = b->wpos + len;
	if (need > b->size) {
		if (need > b->max) {
			errno = ERANGE;
			return NULL;
		}
		if (need > ibuf_box(b)->cap && ibuf_grow(b, need) == -1)
			return NULL;
		b->size = need;
	}
	if (b->buf == NULL)
		return ibuf_empty;
	b->wpos = need;
	return b->buf + need - len;
}

void *
ibuf_reserve(struct ibuf *b, size_t len)
{
	void *p;

	if ((p = libimsg__ibuf_reserve_raw(b, len)) == NULL)
		return NULL;
	/* Zero even bytes a truncate left behind: callers fill structs. */
	if (len > 0)
		memset(p, 0, len);
	return p;
}

int
ibuf_add(struct ibuf *b, const void *data, size_t len)
{
	void *p;

	if (len == 0)
		return 0;
	if ((p = libimsg__ibuf_reserve_raw(b, len)) == NULL)
		return -1;
	memcpy(p, data, len);
	return 0;
}

int
ibuf_add_ibuf(struct ibuf *b, const struct ibuf *from)
{
	size_t len = ibuf_size(from), off;
	uintptr_t src = (uintptr_t)ibuf_data(from), start = (uintptr_t)b->buf;
	unsigned char *p, *tmp;
	int r;

	if (len == 0 || b->buf == NULL || src < start ||
	    src - start >= b->size)
		return ibuf_add(b, ibuf_data(from), len);
	/*
	 * from is b itself or a view into b's storage, which growth moves
	 * and wipes: keep the source as an offset.  Growth keeps the first
	 * wpos bytes; a view that a truncate left reaching past them is
	 * copied aside first.
	 */
	off = src - start;
	if (off > b->wpos || len > b->wpos - off) {
		if ((tmp = malloc(len)) == NULL)
			return -1;
		memcpy(tmp, ibuf_data(from), len);
		r = ibuf_add(b, tmp, len);
		libimsg__wipe(tmp, len);
		free(tmp);
		return r;
	}
	if ((p = libimsg__ibuf_reserve_raw(b, len)) == NULL)
		return -1;
	memmove(p, b->buf + off, len);
	return 0;
}

int
ibuf_add_zero(struct ibuf *b, size_t len)
{
	void *p;

	if (len == 0)
		return 0;
	if ((p = libimsg__ibuf_reserve_raw(b, len)) == NULL)
		return -1;
	memset(p, 0, len);
	return 0;
}

/* Store v in n bytes, most significant first. */
static void
put_be(unsigned char *p, uint64_t v, size_t n)
{
	while (n-- > 0) {
		p[n] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t
get_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Encode v as an n-byte integer in network (big-endian) or host order,
 * rejecting values that do not fit.
 */
static int
encode_int(unsigned char *out, uint64_t v, size_t n, int host)
{
	uint16_t v16;
	uint32_t v32;

	if (n < 8 && v >> (n * 8) != 0) {
		errno = EINVAL;
		return -1;
	}
	if (!host || n == 1) {
		put_be(out, v, n);
		return 0;
	}
	switch (n) {
	case 2:
		v16 = (uint16_t)v;
		memcpy(out, &v16, 2);
		break;
	case 4:
		v32 = (uint32_t)v;
		memcpy(out, &v32, 4);
		break;
	default:
		memcpy(out, &v, 8);
		break;
	}
	return 0;
}

static int
add_int(struct ibuf *b, uint64_t v, size_t n, int host)
{
	unsigned char tmp[8];

	if (encode_int(tmp, v, n, host) == -1)
		return -1;
	return ibuf_add(b, tmp, n);
}

int
ibuf_add_n8(struct ibuf *b, uint64_t v)
{
	return add_int(b, v, 1, 0);
}

int
ibuf_add_n16(struct ibuf *b, uint64_t v)
{
	return add_int(b, v, 2, 0);
}

int
ibuf_add_n32(struct ibuf *b, uint64_t v)
{
	return add_int(b, v, 4, 0);
}

int
ibuf_add_n64(struct ibuf *b, uint64_t v)
{
	return add_int(b, v, 8, 0);
}

int
ibuf_add_h16(struct ibuf *b, uint64_t v)
{
	return add_int(b, v, 2, 1);
}

int
ibuf_add_h32(struct ibuf *b, uint64_t v)
{
	return add_int(b, v, 4, 1);
}

int
ibuf_add_h64(struct ibuf *b, uint64_t v)
{
	return add_int(b, v, 8, 1);
}

int
ibuf_add_strbuf(struct ibuf *b, const char *str, size_t len)
{
	unsigned char *p;
	size_t slen;

	if (len == 0) {
		errno = EOVERFLOW;
		return -1;
	}
	if ((p = libimsg__ibuf_reserve_raw(b, len)) == NULL)
		return -1;
	/* Like strlcpy into a zeroed field: truncated, always terminated. */
	slen = strnlen(str, len);
	if (slen == len) {
		memcpy(p, str, len - 1);
		p[len - 1] = '\0';
		errno = EOVERFLOW;
		return -1;
	}
	memcpy(p, str, slen);
	memset(p + slen, 0, len - slen);
	return 0;
}

void *
ibuf_seek(struct ibuf *b, size_t pos, size_t len)
{
	size_t size = ibuf_size(b);

	if (pos > size || len > size - pos) {
		errno = ERANGE;
		return NULL;
	}
	if (b->buf == NULL)
		return ibuf_empty;
	return b->buf + b->rpos + pos;
}

int
ibuf_set(struct ibuf *b, size_t pos, const void *data, size_t len)
{
	void *p;

	if ((p = ibuf_seek(b, pos, len)) == NULL)
		return -1;
	if (len > 0)
		memcpy(p, data, len);
	return 0;
}

static int
set_int(struct ibuf *b, size_t pos, uint64_t v, size_t n, int host)
{
	unsigned char tmp[8];

	if (encode_int(tmp, v, n, host) == -1)
		return -1;
	return ibuf_set(b, pos, tmp, n);
}

int
ibuf_set_n8(struct ibuf *b, size_t pos, uint64_t v)
{
	return set_int(b, pos, v, 1, 0);
}

int
ibuf_set_n16(struct ibuf *b, size_t pos, uint64_t v)
{
	return set_int(b, pos, v, 2, 0);
}

int
ibuf_set_n32(struct ibuf *b, size_t pos, uint64_t v)
{
	return set_int(b, pos, v, 4, 0);
}

int
ibuf_set_n64(struct ibuf *b, size_t pos, uint64_t v)
{
	return set_int(b, pos, v, 8, 0);
}

int
ibuf_set_h16(struct ibuf *b, size_t pos, uint64_t v)
{
	return set_int(b, pos, v, 2, 1);
}

int
ibuf_set_h32(struct ibuf *b, size_t pos, uint64_t v)
{
	return set_int(b, pos, v, 4, 1);
}

int
ibuf_set_h64(struct ibuf *b, size_t pos, uint64_t v)
{
	return set_int(b, pos, v, 8, 1);
}

int
ibuf_set_maxsize(struct ibuf *b, size_t max)
{
	if (ibuf_is_view(b)) {
		errno = EINVAL;
		return -1;
	}
	if (max > b->max || b->wpos > max) {
		errno = ERANGE;
		return -1;
	}
	/* Bytes beyond the new limit can never be reached again: wipe them. */
	if (b->size > max) {
		libimsg__wipe(b->buf + max, b->size - max);
		b->size = max;
	}
	b->max = max;
	return 0;
}

void *
ibuf_data(const struct ibuf *b)
{
	if (b->buf == NULL)
		return NULL;
	return b->buf + b->rpos;
}

size_t
ibuf_size(const struct ibuf *b)
{
	return b->wpos - b->rpos;
}

size_t
ibuf_left(const struct ibuf *b)
{
	if (ibuf_is_view(b))
		return 0;
	return b->max - b->wpos;
}

int
ibuf_truncate(struct ibuf *b, size_t len)
{
	size_t size = ibuf_size(b);

	if (len <= size) {
		b->wpos = b->rpos + len;
		return 0;
	}
	if (ibuf_is_view(b)) {
		errno = ERANGE;
		return -1;
	}
	return ibuf_add_zero(b, len - size);
}

void
ibuf_rewind(struct ibuf *b)
{
	b->rpos = 0;
}

void
ibuf_from_buffer(struct ibuf *b, void *data, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->buf = data;
	b->size = b->wpos = len;
	b->fd = IBUF_FD_VIEW;
}

void
ibuf_from_ibuf(struct ibuf *b, const struct ibuf *from)
{
	ibuf_from_buffer(b, ibuf_data(from), ibuf_size(from));
}

int
ibuf_get(struct ibuf *b, void *data, size_t len)
{
	if (ibuf_size(b) < len) {
		errno = EBADMSG;
		return -1;
	}
	if (len == 0)
		return 0;
	memcpy(data, ibuf_data(b), len);
	b->rpos += len;
	return 0;
}

int
ibuf_get_ibuf(struct ibuf *b, size_t len, struct ibuf *new)
{
	if (ibuf_size(b) < len) {
		errno = EBADMSG;
		return -1;
	}
	ibuf_from_buffer(new, ibuf_data(b), len);
	b->rpos += len;
	return 0;
}

int
ibuf_skip(struct ibuf *b, size_t len)
{
	if (ibuf_size(b) < len) {
		errno = EBADMSG;
		return -1;
	}
	b->rpos += len;
	return 0;
}

/* Read an n-byte integer; *out is only written on success. */
static int
get_int(struct ibuf *b, uint64_t *out, size_t n, int host)
{
	unsigned char tmp[8];
	uint16_t v16;
	uint32_t v32;

	if (ibuf_get(b, tmp, n) == -1)
		return -1;
	if (!host || n == 1) {
		*out = get_be(tmp, n);
		return 0;
	}
	switch (n) {
	case 2:
		memcpy(&v16, tmp, 2);
		*out = v16;
		break;
	case 4:
		memcpy(&v32, tmp, 4);
		*out = v32;
		break;
	default:
		memcpy(out, tmp, 8);
		break;
	}
	return 0;
}

int
ibuf_get_n8(struct ibuf *b, uint8_t *value)
{
	uint64_t v;

	if (get_int(b, &v, 1, 0) == -1)
		return -1;
	*value = (uint8_t)v;
	return 0;
}

int
ibuf_get_n16(struct ibuf *b, uint16_t *value)
{
	uint64_t v;

	if (get_int(b, &v, 2, 0) == -1)
		return -1;
	*value = (uint16_t)v;
	return 0;
}

int
ibuf_get_n32(struct ibuf *b, uint32_t *value)
{
	uint64_t v;

	if (get_int(b, &v, 4, 0) == -1)
		return -1;
	*value = (uint32_t)v;
	return 0;
}

int
ibuf_get_n64(struct ibuf *b, uint64_t *value)
{
	return get_int(b, value, 8, 0);
}

int
ibuf_get_h16(struct ibuf *b, uint16_t *value)
{
	uint64_t v;

	if (get_int(b, &v, 2, 1) == -1)
		return -1;
	*value = (uint16_t)v;
	return 0;
}

int
ibuf_get_h32(struct ibuf *b, uint32_t *value)
{
	uint64_t v;

	if (get_int(b, &v, 4, 1) == -1)
		return -1;
	*value = (uint32_t)v;
	return 0;
}

int
ibuf_get_h64(struct ibuf *b, uint64_t *value)
{
	return get_int(b, value, 8, 1);
}

char *
ibuf_get_string(struct ibuf *b, size_t len)
{
	const unsigned char *p;
	const void *nul;
	size_t n;
	char *s;

	if (ibuf_size(b) < len) {
		errno = EBADMSG;
		return NULL;
	}
	p = ibuf_data(b);
	n = 0;
	if (len > 0) {
		nul = memchr(p, '\0', len);
		n = nul != NULL ? (size_t)((const unsigned char *)nul - p) :
		    len;
	}
	if (n == SIZE_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	if ((s = malloc(n + 1)) == NULL)
		return NULL;
	if (n > 0)
		memcpy(s, p, n);
	s[n] = '\0';
	b->rpos += len;
	return s;
}

int
ibuf_get_strbuf(struct ibuf *b, char *str, size_t len)
{
	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (ibuf_get(b, str, len) == -1)
		return -1;
	if (str[len - 1] != '\0') {
		str[len - 1] = '\0';
		errno = EOVERFLOW;
		return -1;
	}
	return 0;
}

void
ibuf_free(struct ibuf *b)
{
	struct ibuf_box *box;
	int saved_errno;

	if (b == NULL)
		return;
	if (ibuf_is_view(b))
		libimsg__ibuf_view_abort("ibuf_free");
	box = ibuf_box(b);
	libimsg__wipe(b->buf, b->size);
	/* Most received messages: nothing to close, no storage of its own. */
	if (b->fd < 0 && !ibuf_box_heapbuf(box) &&
	    (box->flags & IBUF_BOX_SLAB)) {
		libimsg__ibuf_release(b);
		return;
	}
	saved_errno = errno;
	if (b->fd >= 0)
		close(b->fd);
	if (ibuf_box_heapbuf(box))
		free(b->buf);
	libimsg__ibuf_release(b);
	errno = saved_errno;
}

int
ibuf_fd_avail(struct ibuf *b)
{
	return b->fd >= 0;
}

int
ibuf_fd_get(struct ibuf *b)
{
	int fd;

	if (b->fd < 0)
		return -1;
	fd = b->fd;
	b->fd = -1;
	return fd;
}

void
ibuf_fd_set(struct ibuf *b, int fd)
{
	if (ibuf_is_view(b))
		libimsg__ibuf_view_abort("ibuf_fd_set");
	if (b->fd >= 0)
		close(b->fd);
	b->fd = fd >= 0 ? fd : -1;
}
