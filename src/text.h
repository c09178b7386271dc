/*
 * The imsg text form: one message on one line,
 *
 *	type=N peerid=N pid=N len=N [fd=N[:KIND]] [data=VALUE]
 *
 * printed by the library's trace and by imsgcat, and read back by
 * imsgcat.  The grammar is documented once, in imsgcat(1).  This header
 * is private: the library compiles text.c in with hidden symbols and
 * imsgcat compiles the same file into itself, so nothing here is API.
 * text.c needs only libc.
 */
#ifndef LIBIMSG_TEXT_H
#define LIBIMSG_TEXT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Format one message into buf (size bytes, always NUL-terminated when
 * size > 0).  Returns the length of the full line (without the NUL),
 * like snprintf, so a caller can tell truncation.  No newline is added.
 *
 * fd >= 0 adds "fd=N", with ":KIND" when fdkind is not NULL.  The first
 * datashow bytes of the payload (all of it when datashow >= len) are
 * shown as data="..." when each is printable ASCII, \n or \t, otherwise
 * as data=hex:...; nothing is shown when datashow or len is 0.
 */
size_t	libimsg__text_format(char *buf, size_t size, uint32_t type,
	    uint32_t peerid, uint32_t pid, const void *data, size_t len,
	    size_t datashow, int fd, const char *fdkind);

/* Where the descriptor of a parsed message comes from. */
enum libimsg__text_fdsrc {
	LIBIMSG__TEXT_FD_NONE,		/* no fd= field */
	LIBIMSG__TEXT_FD_NUM,		/* fd=N or fd=N:KIND: descriptor N */
	LIBIMSG__TEXT_FD_PATH		/* fd=@PATH: the caller opens PATH */
};

/* One parsed message.  Fields absent from the line are 0 (fdnum -1). */
struct libimsg__text_msg {
	uint32_t	 type;
	uint32_t	 peerid;
	uint32_t	 pid;
	unsigned char	*data;		/* malloc'd payload, NULL if len is 0 */
	size_t		 len;
	enum libimsg__text_fdsrc fdsrc;
	int		 fdnum;		/* with LIBIMSG__TEXT_FD_NUM */
	char		*fdpath;	/* malloc'd, with LIBIMSG__TEXT_FD_PATH */
};

/*
 * Parse one line of len bytes (a trailing "\n" or "\r\n" is allowed; the
 * line need not be NUL-terminated).  Fields come in any order, each at
 * most once, separated by spaces or tabs; only type= is required.
 * Numbers are decimal or 0x hex and must fit 32 bits (fd= an int).
 * data= takes "..." with the escapes \n \t \r \0 \\ \" \xHH, hex:HH...,
 * or @FILE (the bytes of FILE, read here).  fd= takes N, N:KIND (KIND is
 * ignored, so printed lines read back) or @PATH (not opened here).  len=,
 * when given, must equal the payload length.
 *
 * Returns 1 with *msg filled in, 0 for a line that is empty, blank or a
 * comment (first non-blank character '#'), or -1 with a message naming
 * the problem in err (errsize bytes; the caller adds the line number).
 * On 0 and -1, *msg holds nothing to free.  After 1 the caller releases
 * msg with libimsg__text_msg_clear.
 */
int	libimsg__text_parse(const char *line, size_t len,
	    struct libimsg__text_msg *msg, char *err, size_t errsize);

/* Free what a parsed message holds and zero it.  Accepts a zeroed msg. */
void	libimsg__text_msg_clear(struct libimsg__text_msg *msg);

#endif /* LIBIMSG_TEXT_H */
