/*
 * The imsg text form: the printer the trace and imsgcat share, and the
 * parser imsgcat reads its input with.  Only libc, no malloc in the
 * printer (the trace may print from anywhere), and nothing from the
 * library's private header, so the same file builds into imsgcat.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* ---- printer ------------------------------------------------------------ */

/*
 * An output cursor that keeps counting once buf is full, so the printer
 * can return the whole line's length the way snprintf does.
 */
struct text_out {
	char	*buf;
	size_t	 size;
	size_t	 pos;		/* bytes the full line has so far */
};

static void
out_char(struct text_out *o, char c)
{
	if (o->size > 0 && o->pos < o->size - 1)
		o->buf[o->pos] = c;
	o->pos++;
}

static void
out_str(struct text_out *o, const char *s)
{
	while (*s != '\0')
		out_char(o, *s++);
}

static void
out_uint(struct text_out *o, unsigned long long v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		out_char(o, tmp[--n]);
}

/* Whether the bytes can be shown as a quoted string. */
static int
text_printable(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((p[i] < 0x20 || p[i] > 0x7e) && p[i] != '\n' &&
		    p[i] != '\t')
			return 0;
	return 1;
}

static void
out_data(struct text_out *o, const unsigned char *p, size_t n)
{
	static const char hexdig[] = "0123456789abcdef";
	size_t i;

	if (!text_printable(p, n)) {
		out_str(o, " data=hex:");
		for (i = 0; i < n; i++) {
			out_char(o, hexdig[p[i] >> 4]);
			out_char(o, hexdig[p[i] & 0xf]);
		}
		return;
	}
	out_str(o, " data=\"");
	for (i = 0; i < n; i++) {
		switch (p[i]) {
		case '\n':
			out_str(o, "\\n");
			break;
		case '\t':
			out_str(o, "\\t");
			break;
		case '"':
		case '\\':
			out_char(o, '\\');
			/* FALLTHROUGH */
		default:
			out_char(o, (char)p[i]);
		}
	}
	out_char(o, '"');
}

size_t
libimsg__text_format(char *buf, size_t size, uint32_t type, uint32_t peerid,
    uint32_t pid, const void *data, size_t len, size_t datashow, int fd,
    const char *fdkind)
{
	struct text_out o = { buf, size, 0 };

	out_str(&o, "type=");
	out_uint(&o, type);
	out_str(&o, " peerid=");
	out_uint(&o, peerid);
	out_str(&o, " pid=");
	out_uint(&o, pid);
	out_str(&o, " len=");
	out_uint(&o, len);
	if (fd >= 0) {
		out_str(&o, " fd=");
		out_uint(&o, (unsigned int)fd);
		if (fdkind != NULL) {
			out_char(&o, ':');
			out_str(&o, fdkind);
		}
	}
	if (datashow > 0 && len > 0 && data != NULL)
		out_data(&o, data, datashow < len ? datashow : len);
	if (size > 0)
		buf[o.pos < size ? o.pos : size - 1] = '\0';
	return o.pos;
}

/* ---- parser ------------------------------------------------------------- */

/* Field names, also the bits of the "seen" mask that catches repeats. */
enum text_field { F_TYPE, F_PEERID, F_PID, F_LEN, F_FD, F_DATA, F_COUNT };

static const char *const text_fields[F_COUNT] = {
	"type", "peerid", "pid", "len", "fd", "data"
};

/* The parser's state for one line: a cursor and where errors go. */
struct text_in {
	const char	*p;
	const char	*end;
	char		*err;
	size_t		 errsize;
};

static int
text_err(struct text_in *in, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
text_err(struct text_in *in, const char *fmt, ...)
{
	va_list ap;

	if (in->errsize > 0) {
		va_start(ap, fmt);
		vsnprintf(in->err, in->errsize, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A number of n bytes, decimal or 0x hex, at most max.  Returns -1 with
 * the field named in the message.
 */
static int
parse_num(struct text_in *in, const char *name, const char *s, size_t n,
    unsigned long max, unsigned long *out)
{
	unsigned long v = 0, base = 10;
	size_t i = 0;
	int d;

	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == n)
		return text_err(in, "%s: missing number", name);
	for (; i < n; i++) {
		d = hexval(s[i]);
		if (d < 0 || (unsigned long)d >= base)
			return text_err(in, "%s: bad number '%.*s'", name,
			    (int)(n > 40 ? 40 : n), s);
		if (v > (max - (unsigned long)d) / base)
			return text_err(in, "%s: number out of range '%.*s'",
			    name, (int)(n > 40 ? 40 : n), s);
		v = v * base + (unsigned long)d;
	}
	*out = v;
	return 0;
}

/* One backslash escape at s (past the backslash); returns bytes used. */
static int
parse_escape(struct text_in *in, const char *s, const char *end,
    unsigned char *c)
{
	int hi, lo;

	if (s == end)
		return text_err(in, "data: unterminated string");
	switch (*s) {
	case 'n':	*c = '\n';	return 1;
	case 't':	*c = '\t';	return 1;
	case 'r':	*c = '\r';	return 1;
	case '0':	*c = '\0';	return 1;
	case '\\':	*c = '\\';	return 1;
	case '"':	*c = '"';	return 1;
	case 'x':
		if (end - s < 3 || (hi = hexval(s[1])) < 0 ||
		    (lo = hexval(s[2])) < 0)
			return text_err(in, "data: \\x needs two hex digits");
		*c = (unsigned char)(hi << 4 | lo);
		return 3;
	default:
		return text_err(in, "data: unknown escape '\\%c'", *s);
	}
}

/* data="...": in->p is at the opening quote; leaves it past the closing. */
static int
parse_string(struct text_in *in, struct libimsg__text_msg *msg)
{
	const char *s = in->p + 1;
	unsigned char *d;
	size_t n = 0;
	int used;

	/* Escapes only shrink, so the rest of the line is enough room. */
	if ((d = malloc((size_t)(in->end - s) + 1)) == NULL)
		return text_err(in, "data: %s", strerror(errno));
	for (;;) {
		if (s == in->end) {
			free(d);
			return text_err(in, "data: unterminated string");
		}
		if (*s == '"')
			break;
		if (*s != '\\') {
			d[n++] = (unsigned char)*s++;
			continue;
		}
		if ((used = parse_escape(in, s + 1, in->end, &d[n])) < 0) {
			free(d);
			return -1;
		}
		n++;
		s += 1 + used;
	}
	in->p = s + 1;
	if (in->p != in->end && !is_blank(*in->p)) {
		free(d);
		return text_err(in, "data: text after the closing quote");
	}
	msg->data = d;
	msg->len = n;
	return 0;
}

static int
parse_hex(struct text_in *in, const char *s, size_t n,
    struct libimsg__text_msg *msg)
{
	unsigned char *d;
	size_t i;
	int hi, lo;

	if (n % 2 != 0)
		return text_err(in, "data: odd number of hex digits");
	if (n == 0)
		return 0;
	if ((d = malloc(n / 2)) == NULL)
		return text_err(in, "data: %s", strerror(errno));
	for (i = 0; i < n; i += 2) {
		if ((hi = hexval(s[i])) < 0 || (lo = hexval(s[i + 1])) < 0) {
			free(d);
			return text_err(in, "data: bad hex digit in '%.*s'",
			    (int)(n > 40 ? 40 : n), s);
		}
		d[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	msg->data = d;
	msg->len = n / 2;
	return 0;
}

/* Read what a file holds, up to what one imsg could carry. */
static int
read_file(struct text_in *in, const char *path, struct libimsg__text_msg *msg)
{
	FILE *f;
	unsigned char *d = NULL, *nd;
	size_t n = 0, cap = 0, got;
	int e = 0;

	if ((f = fopen(path, "rb")) == NULL)
		return text_err(in, "data=@%s: %s", path, strerror(errno));
	for (;;) {
		if (n == cap) {
			cap = cap == 0 ? 4096 : cap * 2;
			if (cap > (size_t)UINT32_MAX) {
				e = EFBIG;
				break;
			}
			if ((nd = realloc(d, cap)) == NULL) {
				e = errno;
				break;
			}
			d = nd;
		}
		errno = 0;
		if ((got = fread(d + n, 1, cap - n, f)) == 0) {
			if (ferror(f))
				e = errno != 0 ? errno : EIO;
			break;
		}
		n += got;
	}
	fclose(f);
	if (e != 0 || n == 0) {
		free(d);
		d = NULL;
	}
	if (e != 0)
		return text_err(in, "data=@%s: %s", path, strerror(e));
	msg->data = d;
	msg->len = n;
	return 0;
}

/* A copy of n bytes at s as a string. */
static char *
text_strndup(struct text_in *in, const char *what, const char *s, size_t n)
{
	char *c;

	if ((c = malloc(n + 1)) == NULL) {
		text_err(in, "%s: %s", what, strerror(errno));
		return NULL;
	}
	memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

/* The value of data=: in->p is at its first byte and moves past it. */
static int
parse_data(struct text_in *in, struct libimsg__text_msg *msg)
{
	const char *v = in->p;
	char *path;
	size_t n;
	int r;

	if (v != in->end && *v == '"')
		return parse_string(in, msg);
	while (in->p != in->end && !is_blank(*in->p))
		in->p++;
	n = (size_t)(in->p - v);
	if (n >= 4 && memcmp(v, "hex:", 4) == 0)
		return parse_hex(in, v + 4, n - 4, msg);
	if (n >= 1 && v[0] == '@') {
		if (n == 1)
			return text_err(in, "data: missing file name after @");
		if ((path = text_strndup(in, "data", v + 1, n - 1)) == NULL)
			return -1;
		r = read_file(in, path, msg);
		free(path);
		return r;
	}
	return text_err(in, "data: value must be \"...\", hex:... or @FILE");
}

/* The value of fd=, n bytes at v: N, N:KIND or @PATH. */
static int
parse_fd(struct text_in *in, const char *v, size_t n,
    struct libimsg__text_msg *msg)
{
	const char *colon;
	unsigned long num;

	if (n >= 1 && v[0] == '@') {
		if (n == 1)
			return text_err(in, "fd: missing path after @");
		if ((msg->fdpath = text_strndup(in, "fd", v + 1, n - 1)) == NULL)
			return -1;
		msg->fdsrc = LIBIMSG__TEXT_FD_PATH;
		return 0;
	}
	/* fd=N:KIND is what the printer writes; the kind is only a label. */
	if ((colon = memchr(v, ':', n)) != NULL) {
		if (colon == v + n - 1)
			return text_err(in, "fd: missing kind after ':'");
		n = (size_t)(colon - v);
	}
	if (parse_num(in, "fd", v, n, INT_MAX, &num) == -1)
		return -1;
	msg->fdsrc = LIBIMSG__TEXT_FD_NUM;
	msg->fdnum = (int)num;
	return 0;
}

static int
parse_value(struct text_in *in, enum text_field f,
    struct libimsg__text_msg *msg, unsigned long *lenval)
{
	const char *v = in->p;
	unsigned long num;
	size_t n;

	if (f == F_DATA)
		return parse_data(in, msg);
	while (in->p != in->end && !is_blank(*in->p))
		in->p++;
	n = (size_t)(in->p - v);
	if (f == F_FD)
		return parse_fd(in, v, n, msg);
	if (parse_num(in, text_fields[f], v, n, UINT32_MAX, &num) == -1)
		return -1;
	switch (f) {
	case F_TYPE:
		msg->type = (uint32_t)num;
		break;
	case F_PEERID:
		msg->peerid = (uint32_t)num;
		break;
	case F_PID:
		msg->pid = (uint32_t)num;
		break;
	default:
		*lenval = num;
		break;
	}
	return 0;
}

/* One name=value field at in->p; *seen collects the names met so far. */
static int
parse_field(struct text_in *in, struct libimsg__text_msg *msg,
    unsigned int *seen, unsigned long *lenval)
{
	const char *name = in->p;
	size_t n;
	int f;

	while (in->p != in->end && *in->p != '=' && !is_blank(*in->p))
		in->p++;
	n = (size_t)(in->p - name);
	if (in->p == in->end || *in->p != '=')
		return text_err(in, "'%.*s' is not a name=value field",
		    (int)(n > 40 ? 40 : n), name);
	for (f = 0; f < F_COUNT; f++)
		if (strlen(text_fields[f]) == n &&
		    memcmp(text_fields[f], name, n) == 0)
			break;
	if (f == F_COUNT)
		return text_err(in, "unknown field '%.*s'",
		    (int)(n > 40 ? 40 : n), name);
	if (*seen & (1U << f))
		return text_err(in, "%s= given twice", text_fields[f]);
	*seen |= 1U << f;
	in->p++;
	return parse_value(in, (enum text_field)f, msg, lenval);
}

static void
skip_blanks(struct text_in *in)
{
	while (in->p != in->end && is_blank(*in->p))
		in->p++;
}

int
libimsg__text_parse(const char *line, size_t len,
    struct libimsg__text_msg *msg, char *err, size_t errsize)
{
	struct text_in in = { line, line + len, err, errsize };
	unsigned long lenval = 0;
	unsigned int seen = 0;

	memset(msg, 0, sizeof(*msg));
	msg->fdnum = -1;
	if (errsize > 0)
		err[0] = '\0';
	if (in.end != in.p && in.end[-1] == '\n')
		in.end--;
	if (in.end != in.p && in.end[-1] == '\r')
		in.end--;
	if (memchr(line, '\0', (size_t)(in.end - line)) != NULL)
		return text_err(&in, "NUL byte in the line");
	skip_blanks(&in);
	if (in.p == in.end || *in.p == '#')
		return 0;
	while (in.p != in.end) {
		if (parse_field(&in, msg, &seen, &lenval) == -1)
			goto fail;
		skip_blanks(&in);
	}
	if ((seen & (1U << F_TYPE)) == 0) {
		text_err(&in, "missing type=");
		goto fail;
	}
	if ((seen & (1U << F_LEN)) != 0 && lenval != msg->len) {
		text_err(&in, "len=%lu but the payload has %zu bytes",
		    lenval, msg->len);
		goto fail;
	}
	return 1;
fail:
	libimsg__text_msg_clear(msg);
	return -1;
}

void
libimsg__text_msg_clear(struct libimsg__text_msg *msg)
{
	free(msg->data);
	free(msg->fdpath);
	memset(msg, 0, sizeof(*msg));
	msg->fdnum = -1;
}
