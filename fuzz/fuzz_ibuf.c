/*
 * Fuzz the buffer API: the input becomes a sequence of legal ibuf,
 * ibufq and msgbuf calls, and every result (return value, errno, size,
 * space left, positions, descriptor, bytes) is checked against a model
 * that keeps each buffer as a plain byte array with rpos, wpos and max.
 * After every call all live buffers are compared with the model, so a
 * call that damages another buffer is caught too.
 *
 * Input: a sequence of operations, each an opcode byte followed by the
 * bytes its arguments need (slot numbers, lengths, values; see the
 * get_* helpers).  Six slots hold buffers: owned ones (ibuf_open,
 * ibuf_dynamic, popped from a queue) and views (ibuf_from_buffer,
 * ibuf_from_ibuf, ibuf_get_ibuf).  A view is dropped from the model as
 * soon as its owner may move, free or give away its memory, because
 * using it after that is not legal.
 *
 * "Legal" also means: no view is freed, queued or given a descriptor
 * (those abort by design), and no call is made that would legitimately
 * allocate more than ALLOC_LIMIT (a dynamic buffer with max SIZE_MAX
 * asked for a terabyte would only test malloc).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fuzz-common.h"

#include <imsg.h>

#define NSLOT		6
#define NQ		2
#define EXTSZ		256
#define ALLOC_LIMIT	(1U << 20)
#define MAXOPS		4096

enum { EMPTY, OWNED, VIEW };

struct mb {
	int		 kind;
	struct ibuf	*b;	/* owned: the library's; view: &fz->view[i] */
	size_t		 rpos, wpos, max;
	/* owned */
	unsigned char	*mem;	/* the allocation, as b->size bytes */
	size_t		 msize;
	int		 fd;
	/* view: bytes are root[base ...], root a slot or ext (-1) */
	int		 root;
	size_t		 base;
};

struct mq {
	struct mb	*e;
	size_t		 n, cap;
};

struct fz {
	struct fz_in	 in;
	struct mb	 slot[NSLOT];
	struct ibuf	 view[NSLOT];
	unsigned char	 ext[EXTSZ];

	struct ibufqueue *q[NQ];
	struct mq	 mq[NQ];

	/* A write queue, and what must come out of it. */
	struct msgbuf	*m;
	uint32_t	 mcount;
	unsigned char	*mexp;
	size_t		 mlen, mcap;
	int		 sv[2];
};

/* Model bytes of slot s, from its position 0. */
static unsigned char *
mbytes(struct fz *f, const struct mb *m)
{
	if (m->kind == OWNED)
		return m->mem;
	if (m->root < 0)
		return f->ext + m->base;
	return f->slot[m->root].mem + m->base;
}

static size_t
msize(const struct mb *m)
{
	return m->wpos - m->rpos;
}

static void
check_slot(struct fz *f, int s)
{
	struct mb *m = &f->slot[s];
	struct ibuf *b = m->b;

	if (m->kind == EMPTY)
		return;
	CHECK(b->rpos == m->rpos && b->wpos == m->wpos);
	CHECK(ibuf_size(b) == msize(m));
	if (m->kind == VIEW) {
		CHECK(ibuf_left(b) == 0 && b->max == 0 && b->fd == -2);
		CHECK(!ibuf_fd_avail(b));
	} else {
		CHECK(ibuf_left(b) == m->max - m->wpos && b->max == m->max);
		CHECK(b->fd == m->fd && ibuf_fd_avail(b) == (m->fd >= 0));
	}
	if (msize(m) > 0)
		CHECK(memcmp(ibuf_data(b), mbytes(f, m) + m->rpos,
		    msize(m)) == 0);
}

static void
check_all(struct fz *f)
{
	int s;

	for (s = 0; s < NSLOT; s++)
		check_slot(f, s);
}

/* Forget every view into slot s: its memory may move or go away. */
static void
drop_views(struct fz *f, int s)
{
	int i;

	for (i = 0; i < NSLOT; i++)
		if (f->slot[i].kind == VIEW && f->slot[i].root == s)
			f->slot[i].kind = EMPTY;
}

static int
free_slot(struct fz *f)
{
	int s;

	for (s = 0; s < NSLOT; s++)
		if (f->slot[s].kind == EMPTY)
			return s;
	return -1;
}

static void
model_release(struct mb *m)
{
	free(m->mem);
	m->mem = NULL;
	m->kind = EMPTY;
}

/* Slot chosen by the input; -1 unless it holds a buffer of a kind in mask. */
static int
get_slot(struct fz *f, int mask)
{
	int s = fz_u8(&f->in) % NSLOT;

	return (1 << f->slot[s].kind) & mask ? s : -1;
}
#define ANY	(1 << OWNED | 1 << VIEW)

/* A length: mostly small, sometimes right at a limit of slot m. */
static size_t
get_len(struct fz *f, const struct mb *m)
{
	uint8_t c = fz_u8(&f->in);
	size_t wpos = m != NULL ? m->wpos : 0, size = m != NULL ? msize(m) : 0;
	size_t left = m != NULL && m->kind == OWNED ? m->max - m->wpos : 0;

	if (c < 0xc0)
		return c;
	switch (c) {
	case 0xc0:
		return fz_u16(&f->in);
	case 0xc1:
		return SIZE_MAX;
	case 0xc2:
		return SIZE_MAX - wpos;
	case 0xc3:
		return SIZE_MAX - wpos + 1;
	case 0xc4:
		return size;
	case 0xc5:
		return size + 1;
	case 0xc6:
		return size > 0 ? size - 1 : 0;
	case 0xc7:
		return left;
	case 0xc8:
		return left + 1;
	case 0xc9:
		return m != NULL && m->kind == OWNED ? m->msize - wpos : 0;
	case 0xca:
		return (size_t)fz_u8(&f->in) << 8;
	default:
		return c & 0x3f;
	}
}

static uint64_t
get_val(struct fz *f)
{
	static const uint64_t v[] = {
		0, 1, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff,
		0x100000000ULL, UINT64_MAX, 0x0102030405060708ULL
	};
	uint8_t c = fz_u8(&f->in);

	if (c < sizeof(v) / sizeof(v[0]))
		return v[c];
	if (c < 128)
		return fz_u64(&f->in);
	return c;
}

/* Bytes for adds and sets: from the input, then a pattern. */
static unsigned char *
get_bytes(struct fz *f, size_t len)
{
	unsigned char *p;
	size_t i;
	uint8_t seed = fz_u8(&f->in);

	CHECK((p = malloc(len > 0 ? len : 1)) != NULL);
	for (i = 0; i < len; i++)
		p[i] = fz_more(&f->in) && i < 32 ? fz_u8(&f->in) :
		    (unsigned char)(seed + i);
	return p;
}

/*
 * Would a legal reserve of len bytes allocate more than we allow?  Then
 * the call is not made at all.
 */
static int
too_big(const struct mb *m, size_t len)
{
	size_t need;

	if (m->kind != OWNED || len > SIZE_MAX - m->wpos)
		return 0;
	need = m->wpos + len;
	return need > m->msize && need <= m->max && need > ALLOC_LIMIT;
}

/* The errno a reserve of len bytes must fail with, or 0. */
static int
predict_reserve(const struct mb *m, size_t len)
{
	if (len > SIZE_MAX - m->wpos)
		return ERANGE;
	if (m->kind == VIEW)
		return EINVAL;
	if (m->wpos + len > m->msize && m->wpos + len > m->max)
		return ERANGE;
	return 0;
}

/*
 * The model of a reserve: on success, the offset (from position 0) of
 * the len new zeroed bytes; on failure -1 with *err set.
 */
static ssize_t
model_reserve(struct mb *m, size_t len, int *err)
{
	size_t need, off;

	if ((*err = predict_reserve(m, len)) != 0)
		return -1;
	need = m->wpos + len;
	if (need > m->msize) {
		CHECK((m->mem = realloc(m->mem, need > 0 ? need : 1)) != NULL);
		memset(m->mem + m->msize, 0, need - m->msize);
		m->msize = need;
	}
	off = m->wpos;
	memset(m->mem + off, 0, len);
	m->wpos = need;
	return (ssize_t)off;
}

/* Check a call's result against the model's: r == -1 iff err != 0. */
static void
check_result(int r, int e, int err)
{
	if (err != 0)
		CHECK(r == -1 && e == err);
	else
		CHECK(r == 0);
}

static void
op_open(struct fz *f, int dynamic)
{
	static const int mode_n = 7;
	struct mb *m;
	size_t len, max;
	int s;

	if ((s = free_slot(f)) == -1)
		return;
	m = &f->slot[s];
	len = get_len(f, NULL);
	max = len;
	if (dynamic) {
		switch (fz_u8(&f->in) % mode_n) {
		case 0:
			max = 0;
			break;
		case 1:
			max = len > 0 ? len - 1 : 0;
			break;
		case 2:
			break;
		case 3:
			max = len + fz_u8(&f->in);
			break;
		case 4:
			max = 65536;
			break;
		case 5:
			max = SIZE_MAX;
			break;
		default:
			max = get_len(f, NULL);
			break;
		}
	}
	if (dynamic && (max == 0 || max < len)) {
		CHECK_ERR(ibuf_dynamic(len, max), NULL, EINVAL);
		return;
	}
	if (len > ALLOC_LIMIT)
		return;
	m->b = dynamic ? ibuf_dynamic(len, max) : ibuf_open(len);
	CHECK(m->b != NULL);
	m->kind = OWNED;
	m->rpos = m->wpos = 0;
	m->max = max;
	m->fd = -1;
	CHECK((m->mem = calloc(len > 0 ? len : 1, 1)) != NULL);
	m->msize = len;
	/* Both constructors hand out zeroed memory. */
	CHECK(len == 0 || m->b->size >= len);
	CHECK(len == 0 || memcmp(m->b->buf, m->mem, len) == 0);
}

static void
op_free(struct fz *f)
{
	int s;

	if ((s = get_slot(f, 1 << OWNED)) == -1)
		return;
	drop_views(f, s);
	errno = EDOM;
	ibuf_free(f->slot[s].b);
	CHECK(errno == EDOM);	/* ibuf_free keeps errno */
	model_release(&f->slot[s]);
}

static void
op_reserve(struct fz *f)
{
	struct mb *m;
	unsigned char *p, *src;
	size_t len, oldw;
	ssize_t off;
	int s, err = 0, e;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	len = get_len(f, m);
	if (too_big(m, len))
		return;
	if (m->kind == OWNED)
		drop_views(f, s);
	oldw = m->wpos;
	errno = 0;
	p = ibuf_reserve(m->b, len);
	e = errno;
	if (len == 0 && m->kind == OWNED) {
		/* Either answer is fine; nothing may change. */
		return;
	}
	off = model_reserve(m, len, &err);
	if (off == -1) {
		CHECK(p == NULL && e == err);
		return;
	}
	CHECK(p != NULL && p == m->b->buf + oldw);
	/* The caller fills what it reserved. */
	src = get_bytes(f, len);
	memcpy(p, src, len);
	memcpy(m->mem + off, src, len);
	free(src);
}

static void
op_add(struct fz *f, int zero)
{
	struct mb *m;
	unsigned char *src;
	size_t len;
	ssize_t off;
	int s, r, e, err;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	len = get_len(f, m);
	if (too_big(m, len))
		return;
	/* A source as long as len only where the add can succeed. */
	err = len == 0 ? 0 : predict_reserve(m, len);
	src = zero ? NULL : get_bytes(f, err == 0 ? len : 0);
	if (m->kind == OWNED)
		drop_views(f, s);
	errno = 0;
	r = zero ? ibuf_add_zero(m->b, len) : ibuf_add(m->b, src, len);
	e = errno;
	/* Adding nothing succeeds at once, even on a view. */
	if (len == 0) {
		CHECK(r == 0);
		free(src);
		return;
	}
	off = model_reserve(m, len, &err);
	check_result(r, e, err);
	if (off >= 0 && !zero)
		memcpy(m->mem + off, src, len);
	free(src);
}

/* Encode v as n bytes, big-endian or host order; -1 if it does not fit. */
static int
encode(unsigned char *out, uint64_t v, int n, int host)
{
	uint16_t v16;
	uint32_t v32;
	int i;

	if (n < 8 && v >> (8 * n) != 0)
		return -1;
	if (!host) {
		for (i = n - 1; i >= 0; i--, v >>= 8)
			out[i] = (unsigned char)v;
		return 0;
	}
	if (n == 2) {
		v16 = (uint16_t)v;
		memcpy(out, &v16, 2);
	} else if (n == 4) {
		v32 = (uint32_t)v;
		memcpy(out, &v32, 4);
	} else
		memcpy(out, &v, 8);
	return 0;
}

/* The seven integer widths: n8 n16 n32 n64 h16 h32 h64. */
static const int iw_len[7] = { 1, 2, 4, 8, 2, 4, 8 };
static const int iw_host[7] = { 0, 0, 0, 0, 1, 1, 1 };

static int
call_add_int(struct ibuf *b, int w, uint64_t v)
{
	switch (w) {
	case 0:
		return ibuf_add_n8(b, v);
	case 1:
		return ibuf_add_n16(b, v);
	case 2:
		return ibuf_add_n32(b, v);
	case 3:
		return ibuf_add_n64(b, v);
	case 4:
		return ibuf_add_h16(b, v);
	case 5:
		return ibuf_add_h32(b, v);
	default:
		return ibuf_add_h64(b, v);
	}
}

static int
call_set_int(struct ibuf *b, size_t pos, int w, uint64_t v)
{
	switch (w) {
	case 0:
		return ibuf_set_n8(b, pos, v);
	case 1:
		return ibuf_set_n16(b, pos, v);
	case 2:
		return ibuf_set_n32(b, pos, v);
	case 3:
		return ibuf_set_n64(b, pos, v);
	case 4:
		return ibuf_set_h16(b, pos, v);
	case 5:
		return ibuf_set_h32(b, pos, v);
	default:
		return ibuf_set_h64(b, pos, v);
	}
}

static void
op_add_int(struct fz *f)
{
	unsigned char enc[8];
	struct mb *m;
	uint64_t v;
	ssize_t off;
	int s, w, r, e, err = 0;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	w = fz_u8(&f->in) % 7;
	v = get_val(f);
	if (m->kind == OWNED)
		drop_views(f, s);
	errno = 0;
	r = call_add_int(m->b, w, v);
	e = errno;
	/* The value is checked before anything else; h64/n64 take all. */
	if (encode(enc, v, iw_len[w], iw_host[w]) == -1) {
		CHECK(r == -1 && e == EINVAL);
		return;
	}
	off = model_reserve(m, (size_t)iw_len[w], &err);
	check_result(r, e, err);
	if (off >= 0)
		memcpy(m->mem + off, enc, (size_t)iw_len[w]);
}

static void
op_add_strbuf(struct fz *f)
{
	struct mb *m;
	char str[64];
	size_t len, slen, i;
	ssize_t off;
	int s, r, e, err = 0;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	slen = fz_u8(&f->in) % sizeof(str);
	for (i = 0; i < slen; i++)
		str[i] = (char)(fz_u8(&f->in) | 1);
	str[slen] = '\0';
	len = get_len(f, m);
	if (too_big(m, len))
		return;
	if (m->kind == OWNED)
		drop_views(f, s);
	errno = 0;
	r = ibuf_add_strbuf(m->b, str, len);
	e = errno;
	if (len == 0) {
		CHECK(r == -1 && e == EOVERFLOW);
		return;
	}
	if ((off = model_reserve(m, len, &err)) == -1) {
		CHECK(r == -1 && e == err);
		return;
	}
	/* NUL-padded; a string that does not fit is cut, still reserved. */
	if (slen >= len) {
		memcpy(m->mem + off, str, len - 1);
		CHECK(r == -1 && e == EOVERFLOW);
	} else {
		memcpy(m->mem + off, str, slen);
		CHECK(r == 0);
	}
}

static void
op_add_ibuf(struct fz *f)
{
	struct mb *m, *from;
	unsigned char *src;
	size_t len;
	ssize_t off;
	int s, t, r, e, err = 0;

	if ((s = get_slot(f, ANY)) == -1 || (t = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	from = &f->slot[t];
	len = msize(from);
	if (too_big(m, len))
		return;
	/* Copy the source first: it may be the destination itself. */
	CHECK((src = malloc(len > 0 ? len : 1)) != NULL);
	if (len > 0)
		memcpy(src, mbytes(f, from) + from->rpos, len);
	errno = 0;
	r = ibuf_add_ibuf(m->b, from->b);
	e = errno;
	/* Only now: from may be a view into m. */
	if (m->kind == OWNED)
		drop_views(f, s);
	off = len == 0 ? 0 : model_reserve(m, len, &err);
	check_result(r, e, err);
	if (err == 0 && len > 0)
		memcpy(m->mem + off, src, len);
	free(src);
}

static void
op_set(struct fz *f, int integer)
{
	unsigned char enc[8], *src = NULL;
	struct mb *m;
	size_t pos, len;
	uint64_t v = 0;
	int s, w = 0, r, e;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	pos = get_len(f, m);
	if (integer) {
		w = fz_u8(&f->in) % 7;
		v = get_val(f);
		len = (size_t)iw_len[w];
	} else {
		len = get_len(f, m);
		src = get_bytes(f, pos > msize(m) || len > msize(m) - pos ?
		    0 : len);
	}
	errno = 0;
	r = integer ? call_set_int(m->b, pos, w, v) :
	    ibuf_set(m->b, pos, src, len);
	e = errno;
	/* The value is checked first, then the range. */
	if (integer && encode(enc, v, iw_len[w], iw_host[w]) == -1) {
		CHECK(r == -1 && e == EINVAL);
		return;
	}
	if (pos > msize(m) || len > msize(m) - pos) {
		CHECK(r == -1 && e == ERANGE);
		free(src);
		return;
	}
	CHECK(r == 0);
	if (len > 0)
		memcpy(mbytes(f, m) + m->rpos + pos, integer ? enc : src, len);
	free(src);
}

static void
op_seek(struct fz *f)
{
	struct mb *m;
	unsigned char *p;
	size_t pos, len;
	int s;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	pos = get_len(f, m);
	len = get_len(f, m);
	errno = 0;
	p = ibuf_seek(m->b, pos, len);
	if (pos > msize(m) || len > msize(m) - pos) {
		CHECK(p == NULL && errno == ERANGE);
		return;
	}
	CHECK(p != NULL);
	if (len == 0)
		return;
	CHECK(p == (unsigned char *)ibuf_data(m->b) + pos);
	CHECK(memcmp(p, mbytes(f, m) + m->rpos + pos, len) == 0);
	/* Write through the pointer, as callers filling a header do. */
	p[0] ^= 0x5a;
	mbytes(f, m)[m->rpos + pos] ^= 0x5a;
}

static uint64_t
decode(const unsigned char *p, int n, int host)
{
	uint64_t v = 0;
	uint32_t v32;
	uint16_t v16;
	int i;

	if (!host) {
		for (i = 0; i < n; i++)
			v = v << 8 | p[i];
		return v;
	}
	if (n == 2) {
		memcpy(&v16, p, 2);
		return v16;
	}
	if (n == 4) {
		memcpy(&v32, p, 4);
		return v32;
	}
	memcpy(&v, p, 8);
	return v;
}

static void
op_get_int(struct fz *f)
{
	struct mb *m;
	uint64_t v64 = 0;
	uint32_t v32 = 0;
	uint16_t v16 = 0;
	uint8_t v8 = 0;
	size_t n;
	int s, w, r;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	w = fz_u8(&f->in) % 7;
	n = (size_t)iw_len[w];
	errno = 0;
	switch (w) {
	case 0:
		r = ibuf_get_n8(m->b, &v8);
		v64 = v8;
		break;
	case 1:
		r = ibuf_get_n16(m->b, &v16);
		v64 = v16;
		break;
	case 2:
		r = ibuf_get_n32(m->b, &v32);
		v64 = v32;
		break;
	case 3:
		r = ibuf_get_n64(m->b, &v64);
		break;
	case 4:
		r = ibuf_get_h16(m->b, &v16);
		v64 = v16;
		break;
	case 5:
		r = ibuf_get_h32(m->b, &v32);
		v64 = v32;
		break;
	default:
		r = ibuf_get_h64(m->b, &v64);
		break;
	}
	if (msize(m) < n) {
		CHECK(r == -1 && errno == EBADMSG);
		return;
	}
	CHECK(r == 0);
	CHECK(v64 == decode(mbytes(f, m) + m->rpos, (int)n, iw_host[w]));
	m->rpos += n;
}

/* ibuf_get, ibuf_skip, ibuf_get_string and ibuf_get_strbuf. */
static void
op_get(struct fz *f, int kind)
{
	const unsigned char *want;
	struct mb *m;
	char *str = NULL, *buf;
	size_t len, k;
	int s, r = 0, e;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	len = get_len(f, m);
	want = mbytes(f, m) + m->rpos;
	/* A destination as long as the call claims, unless it must fail. */
	k = len <= msize(m) ? len : 0;
	CHECK((buf = malloc(k > 0 ? k : 1)) != NULL);
	errno = 0;
	switch (kind) {
	case 0:
		r = ibuf_get(m->b, buf, len);
		break;
	case 1:
		r = ibuf_skip(m->b, len);
		break;
	case 2:
		str = ibuf_get_string(m->b, len);
		r = str != NULL ? 0 : -1;
		break;
	default:
		r = ibuf_get_strbuf(m->b, buf, len);
		break;
	}
	e = errno;
	if (kind == 3 && len == 0) {
		CHECK(r == -1 && e == EINVAL);
	} else if (len > msize(m)) {
		CHECK(r == -1 && e == EBADMSG);
	} else {
		if (kind == 3 && want[len - 1] != '\0') {
			CHECK(r == -1 && e == EOVERFLOW);
			CHECK(buf[len - 1] == '\0' &&
			    memcmp(buf, want, len - 1) == 0);
		} else
			CHECK(r == 0);
		if (kind == 0 || (kind == 3 && r == 0))
			CHECK(len == 0 || memcmp(buf, want, len) == 0);
		if (kind == 2) {
			k = strnlen((const char *)want, len);
			CHECK(strlen(str) == k && memcmp(str, want, k) == 0);
		}
		m->rpos += len;
	}
	free(str);
	free(buf);
}

static void
op_truncate(struct fz *f)
{
	struct mb *m;
	size_t len;
	int s, r, e, err = 0;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	len = get_len(f, m);
	if (len > msize(m) && too_big(m, len - msize(m)))
		return;
	if (m->kind == OWNED && len > msize(m))
		drop_views(f, s);
	errno = 0;
	r = ibuf_truncate(m->b, len);
	e = errno;
	if (len <= msize(m)) {
		CHECK(r == 0);
		m->wpos = m->rpos + len;
		return;
	}
	if (m->kind == VIEW)
		err = ERANGE;
	else
		model_reserve(m, len - msize(m), &err);
	check_result(r, e, err);
}

static void
op_rewind(struct fz *f)
{
	int s;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	ibuf_rewind(f->slot[s].b);
	f->slot[s].rpos = 0;
}

static void
op_set_maxsize(struct fz *f)
{
	struct mb *m;
	size_t max;
	int s, r, e;

	if ((s = get_slot(f, ANY)) == -1)
		return;
	m = &f->slot[s];
	switch (fz_u8(&f->in) % 6) {
	case 0:
		max = m->max;
		break;
	case 1:
		max = m->max + 1;
		break;
	case 2:
		max = m->wpos;
		break;
	case 3:
		max = m->wpos > 0 ? m->wpos - 1 : 0;
		break;
	case 4:
		max = m->wpos + fz_u8(&f->in);
		break;
	default:
		max = get_len(f, m);
		break;
	}
	if (m->kind == OWNED)
		drop_views(f, s);
	errno = 0;
	r = ibuf_set_maxsize(m->b, max);
	e = errno;
	if (m->kind == VIEW) {
		CHECK(r == -1 && e == EINVAL);
		return;
	}
	if (max > m->max || m->wpos > max) {
		CHECK(r == -1 && e == ERANGE);
		return;
	}
	CHECK(r == 0);
	/* Memory past the new limit is wiped and given up. */
	if (m->msize > max)
		m->msize = max;
	m->max = max;
}

/* Three ways to make a view: of ext, of a buffer, of a buffer's next bytes. */
static void
op_view(struct fz *f, int how)
{
	struct mb *m, *from = NULL;
	size_t off, len;
	int s, t = -1, r;

	if ((s = free_slot(f)) == -1)
		return;
	m = &f->slot[s];
	if (how != 0 && (t = get_slot(f, ANY)) == -1)
		return;
	if (t != -1)
		from = &f->slot[t];
	switch (how) {
	case 0:
		off = fz_u8(&f->in);
		len = get_len(f, NULL) % (EXTSZ - off + 1);
		ibuf_from_buffer(&f->view[s], f->ext + off, len);
		m->root = -1;
		m->base = off;
		m->wpos = len;
		break;
	case 1:
		ibuf_from_ibuf(&f->view[s], from->b);
		m->root = from->kind == OWNED ? t : from->root;
		m->base = (from->kind == OWNED ? 0 : from->base) + from->rpos;
		m->wpos = msize(from);
		break;
	default:
		len = get_len(f, from);
		errno = 0;
		r = ibuf_get_ibuf(from->b, len, &f->view[s]);
		if (len > msize(from)) {
			CHECK(r == -1 && errno == EBADMSG);
			return;
		}
		CHECK(r == 0);
		m->root = from->kind == OWNED ? t : from->root;
		m->base = (from->kind == OWNED ? 0 : from->base) + from->rpos;
		m->wpos = len;
		from->rpos += len;
		break;
	}
	m->kind = VIEW;
	m->b = &f->view[s];
	m->rpos = 0;
	m->max = 0;
	m->mem = NULL;
}

static void
op_fd(struct fz *f)
{
	struct mb *m;
	int s, fd, how = fz_u8(&f->in) % 3;

	if ((s = get_slot(f, how == 2 ? ANY : 1 << OWNED)) == -1)
		return;
	m = &f->slot[s];
	switch (how) {
	case 0:
		/* Replaces (and closes) any descriptor held. */
		fd = fz_open_null();
		ibuf_fd_set(m->b, fd);
		m->fd = fd;
		break;
	case 1:
		ibuf_fd_set(m->b, -1);
		m->fd = -1;
		break;
	default:
		fd = ibuf_fd_get(m->b);
		if (m->kind == VIEW) {
			CHECK(fd == -1);
			break;
		}
		CHECK(fd == m->fd);
		if (fd != -1) {
			CHECK(fz_is_null_fd(fd));
			close(fd);
		}
		m->fd = -1;
		CHECK(ibuf_fd_get(m->b) == -1);
		break;
	}
}

static void
mq_push(struct mq *q, const struct mb *m)
{
	if (q->n == q->cap) {
		q->cap = q->cap > 0 ? q->cap * 2 : 8;
		CHECK((q->e = realloc(q->e, q->cap * sizeof(*q->e))) != NULL);
	}
	q->e[q->n++] = *m;
}

static void
check_queues(struct fz *f)
{
	int i;

	for (i = 0; i < NQ; i++)
		CHECK(ibufq_queuelen(f->q[i]) == f->mq[i].n);
	CHECK(msgbuf_queuelen(f->m) == f->mcount);
}

static void
op_queue(struct fz *f)
{
	struct ibuf *b;
	struct mq *q;
	struct mb *m;
	int s, i = fz_u8(&f->in) % NQ, how = fz_u8(&f->in) % 4;

	q = &f->mq[i];
	switch (how) {
	case 0:
		if ((s = get_slot(f, 1 << OWNED)) == -1)
			return;
		drop_views(f, s);
		ibufq_push(f->q[i], f->slot[s].b);
		mq_push(q, &f->slot[s]);
		f->slot[s].kind = EMPTY;
		f->slot[s].mem = NULL;
		break;
	case 1:
		b = ibufq_pop(f->q[i]);
		if (q->n == 0) {
			CHECK(b == NULL);
			break;
		}
		CHECK(b == q->e[0].b);
		if ((s = free_slot(f)) != -1)
			f->slot[s] = q->e[0];
		else {
			ibuf_free(b);
			free(q->e[0].mem);
		}
		memmove(q->e, q->e + 1, --q->n * sizeof(*q->e));
		if (s != -1)
			check_slot(f, s);
		break;
	case 2:
		ibufq_concat(f->q[i], f->q[!i]);
		while (f->mq[!i].n > 0) {
			mq_push(q, &f->mq[!i].e[0]);
			memmove(f->mq[!i].e, f->mq[!i].e + 1,
			    --f->mq[!i].n * sizeof(*q->e));
		}
		break;
	default:
		ibufq_flush(f->q[i]);
		for (; q->n > 0; q->n--) {
			m = &q->e[q->n - 1];
			free(m->mem);
		}
		break;
	}
}

static void
mexp_add(struct fz *f, const struct mb *m)
{
	size_t n = msize(m);

	if (f->mlen + n > f->mcap) {
		f->mcap = f->mlen + n + 4096;
		CHECK((f->mexp = realloc(f->mexp, f->mcap)) != NULL);
	}
	if (n > 0)
		memcpy(f->mexp + f->mlen, m->mem + m->rpos, n);
	f->mlen += n;
	f->mcount++;
}

/* Read what the write queue sent, closing descriptors that came along. */
static size_t
drain_peer(struct fz *f, unsigned char *got, size_t have, size_t want)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct cmsghdr *c;
	struct msghdr msg;
	struct iovec iov;
	ssize_t n;
	size_t i, nfd;
	int one;

	while (have < want) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = got + have;
		iov.iov_len = want - have;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		if ((n = recvmsg(f->sv[1], &msg, 0)) == -1) {
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
			break;
		}
		CHECK(n > 0);
		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c)) {
			nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < nfd; i++) {
				memcpy(&one, CMSG_DATA(c) + i * sizeof(int),
				    sizeof(int));
				CHECK(fz_is_null_fd(one));
				close(one);
			}
		}
		have += (size_t)n;
	}
	return have;
}

static void
op_msgbuf(struct fz *f)
{
	struct mq *q;
	unsigned char *got;
	size_t have = 0, i;
	int s, how = fz_u8(&f->in) % 4, fdpass, idle = 0, r;
	uint32_t qlen;

	switch (how) {
	case 0:
		if ((s = get_slot(f, 1 << OWNED)) == -1)
			return;
		drop_views(f, s);
		ibuf_close(f->m, f->slot[s].b);
		mexp_add(f, &f->slot[s]);
		model_release(&f->slot[s]);
		break;
	case 1:
		q = &f->mq[fz_u8(&f->in) % NQ];
		msgbuf_concat(f->m, f->q[q - f->mq]);
		for (i = 0; i < q->n; i++) {
			mexp_add(f, &q->e[i]);
			free(q->e[i].mem);
		}
		q->n = 0;
		break;
	default:
		/* Write it all out; it must arrive byte for byte. */
		fdpass = how == 3;
		CHECK((got = malloc(f->mlen > 0 ? f->mlen : 1)) != NULL);
		while ((qlen = msgbuf_queuelen(f->m)) > 0) {
			r = fdpass ? msgbuf_write(f->sv[0], f->m) :
			    ibuf_write(f->sv[0], f->m);
			CHECK(r == 0);
			i = have;
			have = drain_peer(f, got, have, f->mlen);
			if (have == i && qlen == msgbuf_queuelen(f->m))
				CHECK(++idle < 1000);
			else
				idle = 0;
		}
		have = drain_peer(f, got, have, f->mlen);
		CHECK(have == f->mlen);
		/* And not a byte more. */
		CHECK(recv(f->sv[1], &r, 1, MSG_DONTWAIT) == -1 &&
		    errno == EAGAIN);
		CHECK(have == 0 || memcmp(got, f->mexp, have) == 0);
		CHECK(ibuf_write(f->sv[0], f->m) == 0);
		free(got);
		f->mlen = 0;
		f->mcount = 0;
		break;
	}
}

static void
setup(struct fz *f, const uint8_t *data, size_t size)
{
	size_t i;
	int k;

	memset(f, 0, sizeof(*f));
	f->in.p = data;
	f->in.len = size;
	for (i = 0; i < EXTSZ; i++)
		f->ext[i] = (unsigned char)(i * 7 + 1);
	for (k = 0; k < NQ; k++)
		CHECK((f->q[k] = ibufq_new()) != NULL);
	CHECK((f->m = msgbuf_new()) != NULL);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0, f->sv) == 0);
}

static void
teardown(struct fz *f)
{
	int s, k;

	for (s = 0; s < NSLOT; s++) {
		if (f->slot[s].kind == OWNED) {
			drop_views(f, s);
			ibuf_free(f->slot[s].b);
		}
		model_release(&f->slot[s]);
	}
	for (k = 0; k < NQ; k++) {
		ibufq_free(f->q[k]);
		while (f->mq[k].n > 0)
			free(f->mq[k].e[--f->mq[k].n].mem);
		free(f->mq[k].e);
	}
	ibufq_free(NULL);
	msgbuf_free(f->m);
	msgbuf_free(NULL);
	ibuf_free(NULL);
	free(f->mexp);
	close(f->sv[0]);
	close(f->sv[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f;
	int n, fds0;

	fds0 = fz_count_fds();
	setup(&f, data, size);
	for (n = 0; fz_more(&f.in) && n < MAXOPS; n++) {
		switch (fz_u8(&f.in) % 26) {
		case 0:
		case 1:
			op_open(&f, 0);
			break;
		case 2:
		case 3:
			op_open(&f, 1);
			break;
		case 4:
			op_free(&f);
			break;
		case 5:
			op_reserve(&f);
			break;
		case 6:
		case 7:
			op_add(&f, 0);
			break;
		case 8:
			op_add(&f, 1);
			break;
		case 9:
			op_add_int(&f);
			break;
		case 10:
			op_add_strbuf(&f);
			break;
		case 11:
			op_add_ibuf(&f);
			break;
		case 12:
			op_set(&f, 0);
			break;
		case 13:
			op_set(&f, 1);
			break;
		case 14:
			op_seek(&f);
			break;
		case 15:
			op_get_int(&f);
			break;
		case 16:
		case 17:
			op_get(&f, fz_u8(&f.in) % 4);
			break;
		case 18:
			op_truncate(&f);
			break;
		case 19:
			op_rewind(&f);
			break;
		case 20:
			op_set_maxsize(&f);
			break;
		case 21:
		case 22:
			op_view(&f, fz_u8(&f.in) % 3);
			break;
		case 23:
			op_fd(&f);
			break;
		case 24:
			op_queue(&f);
			break;
		default:
			op_msgbuf(&f);
			break;
		}
		check_all(&f);
		check_queues(&f);
	}
	teardown(&f);
	CHECK(fz_count_fds() == fds0);
	return 0;
}
