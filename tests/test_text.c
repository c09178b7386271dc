/*
 * The text form of src/text.c: the printer's exact output (field order,
 * fd and kind, quoted or hex data, shown prefix, snprintf-like length
 * and truncation) and the parser (fields in any order, numbers, every
 * data and fd form, len= checks, and each malformed line it rejects).
 * The printed form must read back as the same message.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text.h"
#include "harness.h"

/* Print into a static buffer; for checks that look at the whole line. */
static const char *
fmt(uint32_t type, uint32_t peerid, uint32_t pid, const void *data,
    size_t len, size_t show, int fd, const char *kind)
{
	static char buf[1024];
	size_t n;

	n = libimsg__text_format(buf, sizeof(buf), type, peerid, pid, data,
	    len, show, fd, kind);
	CHECK_UINT(n, ==, strlen(buf));
	return buf;
}

/* Parse a NUL-terminated line; returns the parser's value. */
static int
parse(const char *line, struct libimsg__text_msg *m, char *err, size_t esz)
{
	return libimsg__text_parse(line, strlen(line), m, err, esz);
}

/* The line must be rejected with an error containing want. */
static void
check_rejects(const char *line, const char *want, int srcline)
{
	struct libimsg__text_msg m;
	char err[256];
	int r;

	r = parse(line, &m, err, sizeof(err));
	if (r != -1)
		h_fail(__FILE__, srcline, "'%s' parsed (%d), want an error",
		    line, r);
	else if (strstr(err, want) == NULL)
		h_fail(__FILE__, srcline, "'%s': error '%s' lacks '%s'",
		    line, err, want);
	CHECK_PTR(m.data, ==, NULL);
	CHECK_PTR(m.fdpath, ==, NULL);
}
#define REJECTS(line, want)	check_rejects((line), (want), __LINE__)

/* ---- printer ---------------------------------------------------------- */

static void
format_prints_header_fields_in_order(void)
{
	CHECK_STR(fmt(1, 2, 3, NULL, 0, 0, -1, NULL),
	    "type=1 peerid=2 pid=3 len=0");
	CHECK_STR(fmt(UINT32_MAX, 0, 4000000000U, NULL, 0, 0, -1, NULL),
	    "type=4294967295 peerid=0 pid=4000000000 len=0");
}

static void
format_prints_len_without_data_unless_asked(void)
{
	CHECK_STR(fmt(1, 0, 0, "hello", 5, 0, -1, NULL),
	    "type=1 peerid=0 pid=0 len=5");
}

static void
format_prints_fd_with_and_without_kind(void)
{
	CHECK_STR(fmt(1, 0, 0, NULL, 0, 0, 7, NULL),
	    "type=1 peerid=0 pid=0 len=0 fd=7");
	CHECK_STR(fmt(1, 0, 0, "x", 1, 8, 0, "pipe"),
	    "type=1 peerid=0 pid=0 len=1 fd=0:pipe data=\"x\"");
}

static void
format_quotes_printable_data_with_escapes(void)
{
	CHECK_STR(fmt(1, 2, 0, "hello", 5, 100, -1, NULL),
	    "type=1 peerid=2 pid=0 len=5 data=\"hello\"");
	CHECK_STR(fmt(1, 2, 0, "a\"b\\c\nd\te ~", 11, 100, -1, NULL),
	    "type=1 peerid=2 pid=0 len=11 data=\"a\\\"b\\\\c\\nd\\te ~\"");
}

static void
format_uses_lowercase_hex_for_other_bytes(void)
{
	CHECK_STR(fmt(1, 0, 0, "\x0a\xff\x00z", 4, 4, -1, NULL),
	    "type=1 peerid=0 pid=0 len=4 data=hex:0aff007a");
	CHECK_STR(fmt(1, 0, 0, "ab\r", 3, 4, -1, NULL),
	    "type=1 peerid=0 pid=0 len=3 data=hex:61620d");
}

static void
format_shows_only_datashow_bytes_and_full_len(void)
{
	CHECK_STR(fmt(9, 0, 0, "hello world", 11, 5, -1, NULL),
	    "type=9 peerid=0 pid=0 len=11 data=\"hello\"");
	/* The unprintable byte lies past what is shown. */
	CHECK_STR(fmt(9, 0, 0, "ab\x01", 3, 2, -1, NULL),
	    "type=9 peerid=0 pid=0 len=3 data=\"ab\"");
}

static void
format_returns_full_length_and_truncates(void)
{
	const char *full = "type=1 peerid=2 pid=3 len=5 data=\"hello\"";
	char buf[10];
	size_t n;

	memset(buf, 'X', sizeof(buf));
	n = libimsg__text_format(buf, sizeof(buf), 1, 2, 3, "hello", 5, 5,
	    -1, NULL);
	CHECK_UINT(n, ==, strlen(full));
	CHECK_STR(buf, "type=1 pe");
	/* size 0: nothing written, length still returned. */
	buf[0] = 'Q';
	n = libimsg__text_format(buf, 0, 1, 2, 3, "hello", 5, 5, -1, NULL);
	CHECK_UINT(n, ==, strlen(full));
	CHECK_INT(buf[0], ==, 'Q');
	n = libimsg__text_format(buf, 1, 1, 2, 3, "hello", 5, 5, -1, NULL);
	CHECK_UINT(n, ==, strlen(full));
	CHECK_INT(buf[0], ==, '\0');
}

/* ---- parser: accepted lines ------------------------------------------- */

static void
parse_reads_fields_in_any_order(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(parse("data=\"hi\" pid=3 peerid=2 type=1", &m, err,
	    sizeof(err)), ==, 1);
	CHECK_UINT(m.type, ==, 1);
	CHECK_UINT(m.peerid, ==, 2);
	CHECK_UINT(m.pid, ==, 3);
	CHECK_UINT(m.len, ==, 2);
	CHECK_MEM(m.data, "hi", 2);
	CHECK_INT(m.fdsrc, ==, LIBIMSG__TEXT_FD_NONE);
	libimsg__text_msg_clear(&m);
}

static void
parse_defaults_absent_fields_to_zero(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(parse("type=5", &m, err, sizeof(err)), ==, 1);
	CHECK_UINT(m.type, ==, 5);
	CHECK_UINT(m.peerid, ==, 0);
	CHECK_UINT(m.pid, ==, 0);
	CHECK_UINT(m.len, ==, 0);
	CHECK_PTR(m.data, ==, NULL);
	CHECK_INT(m.fdsrc, ==, LIBIMSG__TEXT_FD_NONE);
	libimsg__text_msg_clear(&m);
}

static void
parse_takes_decimal_and_hex_numbers(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(parse("type=0x1F peerid=4294967295 pid=0xffffffff", &m, err,
	    sizeof(err)), ==, 1);
	CHECK_UINT(m.type, ==, 31);
	CHECK_UINT(m.peerid, ==, UINT32_MAX);
	CHECK_UINT(m.pid, ==, UINT32_MAX);
	libimsg__text_msg_clear(&m);
}

static void
parse_decodes_string_escapes(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(parse("type=1 data=\"a b\\n\\t\\\\\\\"\\x00\\xfF\\r\\0\"", &m,
	    err, sizeof(err)), ==, 1);
	CHECK_UINT(m.len, ==, 11);
	CHECK_MEM(m.data, "a b\n\t\\\"\x00\xff\r\x00", 11);
	libimsg__text_msg_clear(&m);
	CHECK_INT(parse("type=1 data=\"\"", &m, err, sizeof(err)), ==, 1);
	CHECK_UINT(m.len, ==, 0);
	libimsg__text_msg_clear(&m);
}

static void
parse_decodes_hex_data(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(parse("type=1 data=hex:0aFF00", &m, err, sizeof(err)), ==, 1);
	CHECK_UINT(m.len, ==, 3);
	CHECK_MEM(m.data, "\x0a\xff\x00", 3);
	libimsg__text_msg_clear(&m);
	CHECK_INT(parse("type=1 data=hex:", &m, err, sizeof(err)), ==, 1);
	CHECK_UINT(m.len, ==, 0);
	libimsg__text_msg_clear(&m);
}

static void
parse_reads_data_from_file(void)
{
	struct libimsg__text_msg m;
	char path[] = "/tmp/test_text.XXXXXX", line[128], err[128];
	int fd;

	CHECK((fd = mkstemp(path)) != -1);
	CHECK_INT(write(fd, "file\0bytes", 10), ==, 10);
	close(fd);
	snprintf(line, sizeof(line), "type=2 data=@%s len=10", path);
	CHECK_INT(parse(line, &m, err, sizeof(err)), ==, 1);
	CHECK_UINT(m.len, ==, 10);
	CHECK_MEM(m.data, "file\0bytes", 10);
	libimsg__text_msg_clear(&m);
	unlink(path);
	REJECTS(line, "No such file");
}

static void
parse_reads_fd_number_kind_and_path(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(parse("type=1 fd=5", &m, err, sizeof(err)), ==, 1);
	CHECK_INT(m.fdsrc, ==, LIBIMSG__TEXT_FD_NUM);
	CHECK_INT(m.fdnum, ==, 5);
	libimsg__text_msg_clear(&m);
	CHECK_INT(parse("type=1 fd=0x10:socket", &m, err, sizeof(err)), ==, 1);
	CHECK_INT(m.fdsrc, ==, LIBIMSG__TEXT_FD_NUM);
	CHECK_INT(m.fdnum, ==, 16);
	libimsg__text_msg_clear(&m);
	CHECK_INT(parse("type=1 fd=@/etc/passwd", &m, err, sizeof(err)), ==, 1);
	CHECK_INT(m.fdsrc, ==, LIBIMSG__TEXT_FD_PATH);
	CHECK_STR(m.fdpath, "/etc/passwd");
	libimsg__text_msg_clear(&m);
	CHECK_PTR(m.fdpath, ==, NULL);
}

static void
parse_accepts_matching_len(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(parse("type=1 len=3 data=\"abc\"", &m, err, sizeof(err)),
	    ==, 1);
	libimsg__text_msg_clear(&m);
	CHECK_INT(parse("type=1 len=0", &m, err, sizeof(err)), ==, 1);
	libimsg__text_msg_clear(&m);
}

static void
parse_allows_blanks_newline_and_comments(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(parse("  \ttype=1\t peerid=2  \r\n", &m, err, sizeof(err)),
	    ==, 1);
	CHECK_UINT(m.peerid, ==, 2);
	libimsg__text_msg_clear(&m);
	CHECK_INT(parse("", &m, err, sizeof(err)), ==, 0);
	CHECK_INT(parse("   \n", &m, err, sizeof(err)), ==, 0);
	CHECK_INT(parse("  # type=1", &m, err, sizeof(err)), ==, 0);
}

static void
parse_stops_at_given_length(void)
{
	struct libimsg__text_msg m;
	char err[128];

	/* Not NUL-terminated where the length ends. */
	CHECK_INT(libimsg__text_parse("type=12junk", 7, &m, err, sizeof(err)),
	    ==, 1);
	CHECK_UINT(m.type, ==, 12);
	libimsg__text_msg_clear(&m);
}

/* ---- parser: rejected lines ------------------------------------------- */

static void
parse_rejects_missing_type(void)
{
	REJECTS("peerid=1 data=\"x\"", "missing type");
}

static void
parse_rejects_unknown_field(void)
{
	REJECTS("type=1 colour=red", "unknown field 'colour'");
}

static void
parse_rejects_field_without_equals(void)
{
	REJECTS("type=1 hello", "'hello' is not a name=value field");
}

static void
parse_rejects_repeated_field(void)
{
	REJECTS("type=1 type=2", "type= given twice");
	REJECTS("type=1 data=\"a\" data=hex:00", "data= given twice");
}

static void
parse_rejects_bad_numbers(void)
{
	REJECTS("type=", "type: missing number");
	REJECTS("type=abc", "type: bad number 'abc'");
	REJECTS("type=0x", "type: missing number");
	REJECTS("type=0xg1", "type: bad number");
	REJECTS("type=-1", "type: bad number");
	REJECTS("type=1 peerid=12a", "peerid: bad number");
	REJECTS("type=4294967296", "type: number out of range");
	REJECTS("type=1 pid=0x100000000", "pid: number out of range");
	REJECTS("type=1 len=99999999999", "len: number out of range");
}

static void
parse_rejects_bad_strings(void)
{
	REJECTS("type=1 data=\"abc", "unterminated string");
	REJECTS("type=1 data=\"abc\\\"", "unterminated string");
	REJECTS("type=1 data=\"a\\q\"", "unknown escape '\\q'");
	REJECTS("type=1 data=\"\\x4\"", "\\x needs two hex digits");
	REJECTS("type=1 data=\"\\xzz\"", "\\x needs two hex digits");
	REJECTS("type=1 data=\"ab\"cd", "text after the closing quote");
}

static void
parse_rejects_bad_hex(void)
{
	REJECTS("type=1 data=hex:abc", "odd number of hex digits");
	REJECTS("type=1 data=hex:zz", "bad hex digit");
}

static void
parse_rejects_bad_data_forms(void)
{
	REJECTS("type=1 data=", "value must be");
	REJECTS("type=1 data=plain", "value must be");
	REJECTS("type=1 data=@", "missing file name");
	REJECTS("type=1 data=@/nonexistent/x", "No such file");
}

static void
parse_rejects_bad_fd(void)
{
	REJECTS("type=1 fd=", "fd: missing number");
	REJECTS("type=1 fd=x", "fd: bad number");
	REJECTS("type=1 fd=3:", "missing kind");
	REJECTS("type=1 fd=2147483648", "fd: number out of range");
	REJECTS("type=1 fd=@", "missing path");
}

static void
parse_rejects_len_mismatch(void)
{
	REJECTS("type=1 len=4 data=\"abc\"", "len=4 but the payload has 3");
	REJECTS("type=1 len=1", "len=1 but the payload has 0");
}

static void
parse_rejects_nul_byte(void)
{
	struct libimsg__text_msg m;
	char err[128];

	CHECK_INT(libimsg__text_parse("type=1\0x", 8, &m, err, sizeof(err)),
	    ==, -1);
	CHECK(strstr(err, "NUL") != NULL);
}

static void
parse_truncates_error_to_errsize(void)
{
	struct libimsg__text_msg m;
	char err[8];

	CHECK_INT(parse("type=1 colour=red", &m, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "unknown");
	/* errsize 0: nothing is written. */
	CHECK_INT(parse("colour=red", &m, NULL, 0), ==, -1);
}

/* ---- both ------------------------------------------------------------- */

/* Every byte value, in both data forms, reads back as it was printed. */
static void
printed_lines_parse_back_to_same_message(void)
{
	unsigned char all[256];
	const char *texts[] = { "", "hello", "q\"b\\s\n\t end", "~ !" };
	struct libimsg__text_msg m;
	char line[1024], err[128];
	size_t i;

	for (i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)i;
	libimsg__text_format(line, sizeof(line), 7, 8, 9, all, sizeof(all),
	    sizeof(all), 3, "file");
	CHECK_INT(parse(line, &m, err, sizeof(err)), ==, 1);
	CHECK_UINT(m.type, ==, 7);
	CHECK_UINT(m.peerid, ==, 8);
	CHECK_UINT(m.pid, ==, 9);
	CHECK_INT(m.fdnum, ==, 3);
	CHECK_UINT(m.len, ==, sizeof(all));
	if (m.len == sizeof(all))
		CHECK_MEM(m.data, all, sizeof(all));
	libimsg__text_msg_clear(&m);
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		libimsg__text_format(line, sizeof(line), 1, 0, 0, texts[i],
		    strlen(texts[i]), 100, -1, NULL);
		CHECK_INT(parse(line, &m, err, sizeof(err)), ==, 1);
		CHECK_UINT(m.len, ==, strlen(texts[i]));
		if (m.len > 0 && m.len == strlen(texts[i]))
			CHECK_MEM(m.data, texts[i], m.len);
		libimsg__text_msg_clear(&m);
	}
}

/* A shown prefix is not the payload: len= gives it away on input. */
static void
printed_prefix_does_not_parse_as_whole_message(void)
{
	char line[256];

	libimsg__text_format(line, sizeof(line), 1, 0, 0, "hello world", 11,
	    5, -1, NULL);
	REJECTS(line, "len=11 but the payload has 5");
}

int
main(void)
{
	RUN(format_prints_header_fields_in_order);
	RUN(format_prints_len_without_data_unless_asked);
	RUN(format_prints_fd_with_and_without_kind);
	RUN(format_quotes_printable_data_with_escapes);
	RUN(format_uses_lowercase_hex_for_other_bytes);
	RUN(format_shows_only_datashow_bytes_and_full_len);
	RUN(format_returns_full_length_and_truncates);
	RUN(parse_reads_fields_in_any_order);
	RUN(parse_defaults_absent_fields_to_zero);
	RUN(parse_takes_decimal_and_hex_numbers);
	RUN(parse_decodes_string_escapes);
	RUN(parse_decodes_hex_data);
	RUN(parse_reads_data_from_file);
	RUN(parse_reads_fd_number_kind_and_path);
	RUN(parse_accepts_matching_len);
	RUN(parse_allows_blanks_newline_and_comments);
	RUN(parse_stops_at_given_length);
	RUN(parse_rejects_missing_type);
	RUN(parse_rejects_unknown_field);
	RUN(parse_rejects_field_without_equals);
	RUN(parse_rejects_repeated_field);
	RUN(parse_rejects_bad_numbers);
	RUN(parse_rejects_bad_strings);
	RUN(parse_rejects_bad_hex);
	RUN(parse_rejects_bad_data_forms);
	RUN(parse_rejects_bad_fd);
	RUN(parse_rejects_len_mismatch);
	RUN(parse_rejects_nul_byte);
	RUN(parse_truncates_error_to_errsize);
	RUN(printed_lines_parse_back_to_same_message);
	RUN(printed_prefix_does_not_parse_as_whole_message);
	return h_done();
}
