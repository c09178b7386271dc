/*
 * LIBIMSG_TRACE: one line per message sent or received, per end of file
 * and per read or write failure, appended to the file the environment
 * names.  Documented in imsg_init(3), ENVIRONMENT.
 *
 * Each hook site in imsg.c is
 *
 *	if (libimsg__tracing())
 *		libimsg__trace_...(...);
 *
 * so tracing that is off costs one load and one predicted branch.  The
 * hooks keep errno as they found it and never fail: the traced program
 * sees the same results with and without the trace.
 */
#ifndef LIBIMSG_TRACE_H
#define LIBIMSG_TRACE_H

#include <sys/types.h>
#include <sys/uio.h>
#include <stddef.h>
#include <stdint.h>

struct ibuf;

/*
 * The trace descriptor, -1 while tracing is off.  Set once at load time
 * (and in a forked child); any thread may later turn it to -1 for good,
 * so it is read and written with atomics.
 */
extern int	libimsg__trace_fd;

static inline int
libimsg__tracing(void)
{
	return __builtin_expect(
	    __atomic_load_n(&libimsg__trace_fd, __ATOMIC_RELAXED) != -1, 0);
}

/*
 * send: one message queued on channel chan.  hdr points at its 16-byte
 * header as it goes on the wire (the descriptor mark in len is ignored),
 * data at len bytes of payload; fd is the descriptor it carries, or -1.
 */
void	libimsg__trace_send(int chan, const void *hdr, const void *data,
	    size_t len, int fd);
/* send, for a message built in msg: header, payload, descriptor. */
void	libimsg__trace_sendbuf(int chan, const struct ibuf *msg);
/*
 * send, for a descriptor-less message with this header whose payload is
 * in iov[iovcnt].  The header comes by value: the batched path keeps it
 * in registers.
 */
void	libimsg__trace_sendv(int chan, uint32_t type, uint32_t peerid,
	    uint32_t pid, const struct iovec *iov, int iovcnt);
/*
 * The read side of imsgbuf_read: recv for each message from first on
 * (linked through entry.tqe_next, each holding its header at
 * ibuf_data), then eof if r is 0 or error if r is -1 (errno then tells
 * which).
 */
void	libimsg__trace_read(int chan, const struct ibuf *first, int r);
/* error: a write on chan failed with errno. */
void	libimsg__trace_write_error(int chan);

#endif /* LIBIMSG_TRACE_H */
