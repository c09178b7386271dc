/*
 * plain: the imsg API built the simplest way, the yardstick the
 * benchmarks hold libimsg against.  Written here from the specification
 * and the man pages; only the functions the benchmarks call.
 *
 * Copyright (c) 2026 The libimsg authors.
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF MIND, USE, DATA OR PROFITS, WHETHER IN
 * AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * The types are libimsg's public ones (struct imsgbuf, imsg, ibuf), so a
 * driver written against <imsg.h> compiles against either implementation.
 * Include this header with PLAIN_RENAME defined to map the API names onto
 * plain's, and include it again without PLAIN_RENAME to undo the mapping:
 * one source file can then hold the same driver code twice.
 */
#ifndef PLAIN_H
#define PLAIN_H

#include <sys/types.h>
#include <sys/uio.h>
#include <stdint.h>

#include <imsg.h>

int	 plain_imsgbuf_init(struct imsgbuf *, int);
void	 plain_imsgbuf_allow_fdpass(struct imsgbuf *);
int	 plain_imsgbuf_set_maxsize(struct imsgbuf *, uint32_t);
int	 plain_imsgbuf_read(struct imsgbuf *);
int	 plain_imsgbuf_write(struct imsgbuf *);
void	 plain_imsgbuf_clear(struct imsgbuf *);
uint32_t plain_imsgbuf_queuelen(struct imsgbuf *);
int	 plain_imsgbuf_get(struct imsgbuf *, struct imsg *);
int	 plain_imsg_get_data(struct imsg *, void *, size_t);
int	 plain_imsg_get_fd(struct imsg *);
uint32_t plain_imsg_get_id(struct imsg *);
size_t	 plain_imsg_get_len(struct imsg *);
uint32_t plain_imsg_get_type(struct imsg *);
int	 plain_imsg_compose(struct imsgbuf *, uint32_t, uint32_t, pid_t, int,
	    const void *, size_t);
int	 plain_imsg_composev(struct imsgbuf *, uint32_t, uint32_t, pid_t, int,
	    const struct iovec *, int);
void	 plain_imsg_free(struct imsg *);

#endif /* PLAIN_H */

#ifdef PLAIN_RENAME
#define imsgbuf_init		plain_imsgbuf_init
#define imsgbuf_allow_fdpass	plain_imsgbuf_allow_fdpass
#define imsgbuf_set_maxsize	plain_imsgbuf_set_maxsize
#define imsgbuf_read		plain_imsgbuf_read
#define imsgbuf_write		plain_imsgbuf_write
#define imsgbuf_clear		plain_imsgbuf_clear
#define imsgbuf_queuelen	plain_imsgbuf_queuelen
#define imsgbuf_get		plain_imsgbuf_get
#define imsg_get_data		plain_imsg_get_data
#define imsg_get_fd		plain_imsg_get_fd
#define imsg_get_id		plain_imsg_get_id
#define imsg_get_len		plain_imsg_get_len
#define imsg_get_type		plain_imsg_get_type
#define imsg_compose		plain_imsg_compose
#define imsg_composev		plain_imsg_composev
#define imsg_free		plain_imsg_free
#else
#undef imsgbuf_init
#undef imsgbuf_allow_fdpass
#undef imsgbuf_set_maxsize
#undef imsgbuf_read
#undef imsgbuf_write
#undef imsgbuf_clear
#undef imsgbuf_queuelen
#undef imsgbuf_get
#undef imsg_get_data
#undef imsg_get_fd
#undef imsg_get_id
#undef imsg_get_len
#undef imsg_get_type
#undef imsg_compose
#undef imsg_composev
#undef imsg_free
#endif
