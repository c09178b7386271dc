/*
 * LIBIMSG_TRACE on real processes: trace_peer (tests/trace_peer.c) is
 * started with the variables set, talks imsg with this program over a
 * socketpair, and the test then reads the trace it left.  Covered: every
 * send and recv line with its fields, a passed descriptor, payload hidden
 * by default and shown with LIBIMSG_TRACE_DATA, %p files of a forked
 * child, a shared file, fd reuse after closing every descriptor, errors
 * with errno names, unwritable traces, "-", unset or empty, set-user-ID,
 * threads, and a statically linked peer.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imsg.h"
#include "harness.h"
#include "testutil.h"

#ifndef TRACE_PEER
#error "TRACE_PEER must name the trace_peer program"
#endif

#ifndef __has_feature
#define __has_feature(x)	0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define SANITIZED	1
#else
#define SANITIZED	0
#endif

/* The peer's end of the channel, always this number in the peer. */
#define PEER_CHAN	10
#define MAXLINES	2048

static char	 tmpdir[] = "/tmp/test_trace.XXXXXX";
static char	 path[512];
static time_t	 t_start;

/* One parsed trace line. */
struct tline {
	long long	 sec;
	long		 pid;
	char		 event[16];
	int		 chan;
	char		 msg[600];	/* the text form, "" for eof */
};
static struct tline	 lines[MAXLINES];

struct peer {
	pid_t		 pid;
	int		 sock;		/* our end of the channel */
	int		 out;		/* the peer's standard output */
};

static const char *
tmp(const char *name)
{
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

/* In the child: the environment the case asks for, then the peer. */
static void __attribute__((noreturn))
peer_exec(const char *prog, const char *mode, const char *trace,
    const char *data, int sock, int out, int errfd)
{
	unsetenv("LIBIMSG_TRACE");
	unsetenv("LIBIMSG_TRACE_DATA");
	if ((trace != NULL && setenv("LIBIMSG_TRACE", trace, 1) == -1) ||
	    (data != NULL && setenv("LIBIMSG_TRACE_DATA", data, 1) == -1))
		_exit(126);
	if (dup2(sock, PEER_CHAN) == -1 || dup2(out, STDOUT_FILENO) == -1 ||
	    (errfd != -1 && dup2(errfd, STDERR_FILENO) == -1))
		_exit(126);
	if (chdir(tmpdir) == -1)
		_exit(126);
	/* Only 0-2 and the channel go to the peer. */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != PEER_CHAN)
			(void)close(fd);
	execl(prog, prog, mode, "10", (char *)NULL);
	_exit(127);
}

static void
peer_start(struct peer *p, const char *prog, const char *mode,
    const char *trace, const char *data, int errfd)
{
	int sv[2], o[2];

	pair(sv);
	if (pipe(o) == -1)
		die("pipe");
	fflush(stdout);
	if ((p->pid = h_fork()) == -1)
		die("fork");
	if (p->pid == 0)
		peer_exec(prog, mode, trace, data, sv[1], o[1], errfd);
	close(sv[1]);
	close(o[1]);
	p->sock = sv[0];
	p->out = o[0];
}

/*
 * Collect the peer's output (NUL-terminated in out) until it exits;
 * killed after 10 s.  Returns its exit status, or -1 if it did not exit.
 */
static int
peer_finish(struct peer *p, char *out, size_t size)
{
	size_t got = 0;
	ssize_t n;
	int status;

	for (;;) {
		if (wait_readable(p->out, 10000) <= 0) {
			h_fail(__FILE__, __LINE__, "peer hangs: killed");
			kill(p->pid, SIGKILL);
			break;
		}
		n = read(p->out, out + got, size - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == size - 1)
			got = 0;	/* keep the tail; outputs are short */
	}
	out[got] = '\0';
	close(p->out);
	if (p->sock != -1)
		close(p->sock);
	while (waitpid(p->pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Parse "<sec>.<6 digits> <pid> <event> <chan>[ <msg>]". */
static int
parse_line(const char *s, struct tline *l)
{
	const char *p = s;
	char *end;
	int i;

	l->sec = strtoll(p, &end, 10);
	if (end == p || *end != '.')
		return -1;
	for (p = end + 1, i = 0; i < 6; i++, p++)
		if (*p < '0' || *p > '9')
			return -1;
	if (*p++ != ' ')
		return -1;
	l->pid = strtol(p, &end, 10);
	if (end == p || *end != ' ')
		return -1;
	p = end + 1;
	for (i = 0; *p != ' ' && *p != '\0' && i < 15; i++)
		l->event[i] = *p++;
	l->event[i] = '\0';
	if (*p++ != ' ')
		return -1;
	l->chan = (int)strtol(p, &end, 10);
	if (end == p || (*end != ' ' && *end != '\0'))
		return -1;
	snprintf(l->msg, sizeof(l->msg), "%s", *end == ' ' ? end + 1 : "");
	return 0;
}

/*
 * Read a trace into lines[]: the number of lines, -1 if the file cannot
 * be opened.  Every line must be whole and well formed.
 */
static int
read_trace(const char *file)
{
	static char buf[256 * 1024];
	char *s, *nl;
	ssize_t n;
	size_t got = 0;
	int fd, count = 0;

	if ((fd = open(file, O_RDONLY)) == -1)
		return -1;
	while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	for (s = buf; *s != '\0' && count < MAXLINES; s = nl + 1) {
		if ((nl = strchr(s, '\n')) == NULL) {
			h_fail(__FILE__, __LINE__, "unfinished line: %s", s);
			break;
		}
		*nl = '\0';
		if (parse_line(s, &lines[count]) == -1) {
			h_fail(__FILE__, __LINE__, "malformed line: %s", s);
			continue;
		}
		if (lines[count].sec < t_start - 1 ||
		    lines[count].sec > time(NULL) + 1)
			h_fail(__FILE__, __LINE__, "time out of range: %s", s);
		count++;
	}
	return count;
}

static int
file_has(const char *file, const char *needle)
{
	static char buf[256 * 1024];
	ssize_t n;
	int fd;

	if ((fd = open(file, O_RDONLY)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, needle) != NULL;
}

static int
exists(const char *file)
{
	struct stat st;

	return stat(file, &st) == 0;
}

/* Entries of dir whose names start with prefix. */
static int
count_entries(const char *dir, const char *prefix)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' &&
		    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

#define CHECK_LINE(i, pid_, event_, msg_) do {				\
	const struct tline *cl = &lines[(i)];				\
	CHECK_INT(cl->pid, ==, (pid_));					\
	CHECK_STR(cl->event, (event_));					\
	CHECK_INT(cl->chan, ==, PEER_CHAN);				\
	CHECK_STR(cl->msg, (msg_));					\
} while (0)

/* ---- the script: every way of sending, and receiving ------------------ */

/* What the script run tells about the peer's side. */
struct script {
	long	 pid;		/* the peer */
	int	 sentfd;	/* its number for the descriptor it sent */
	int	 gotfd;		/* its number for the one it received */
};

static void
expect(struct imsgbuf *ib, uint32_t type, struct imsg *m)
{
	if (next_msg(ib, m) != 1)
		h_fail(__FILE__, __LINE__, "no message %u", type);
	CHECK_UINT(imsg_get_type(m), ==, type);
}

static int
payload_int(struct imsg *m)
{
	int v = -2;

	if (imsg_get_data(m, &v, sizeof(v)) == -1)
		h_fail(__FILE__, __LINE__, "payload is not an int");
	return v;
}

/* Our side of mode_script in trace_peer.c; returns the peer's status. */
static int
run_script(const char *prog, const char *trace, const char *data,
    int errfd, struct script *sc)
{
	static const unsigned char bin[6] = { 1, 2, 3, 0xff, 0, 0x10 };
	struct imsgbuf ib;
	struct imsg m;
	struct peer p;
	char out[512];
	uint32_t t;

	peer_start(&p, prog, "script", trace, data, errfd);
	sc->pid = p.pid;
	if (imsgbuf_init(&ib, p.sock) == -1)
		die("imsgbuf_init");
	imsgbuf_allow_fdpass(&ib);
	for (t = 1; t <= 5; t++) {
		expect(&ib, t, &m);
		if (t == 5) {
			sc->sentfd = payload_int(&m);
			close(imsg_get_fd(&m));
		}
		msg_free(&m);
	}
	CHECK_INT(imsg_compose(&ib, 20, 30, 0, devnull(), "topsecret", 9),
	    ==, 1);
	CHECK_INT(drain(&ib), ==, 0);
	expect(&ib, 6, &m);
	sc->gotfd = payload_int(&m);
	msg_free(&m);
	CHECK_INT(imsg_compose(&ib, 21, 31, 0, -1, bin, sizeof(bin)), ==, 1);
	CHECK_INT(drain(&ib), ==, 0);
	expect(&ib, 21, &m);
	msg_free(&m);
	CHECK_INT(imsg_compose(&ib, 22, 32, 0, -1, "bye", 3), ==, 1);
	CHECK_INT(drain(&ib), ==, 0);
	shutdown(p.sock, SHUT_WR);
	CHECK_INT(next_msg(&ib, &m), ==, 0);
	msg_free(&m);
	imsgbuf_clear(&ib);
	return peer_finish(&p, out, sizeof(out));
}

static void
hex_int(char *s, size_t size, int v)
{
	unsigned char b[sizeof(v)];
	size_t i;

	memcpy(b, &v, sizeof(v));
	snprintf(s, size, " data=hex:");
	for (i = 0; i < sizeof(b); i++)
		snprintf(s + strlen(s), size - strlen(s), "%02x", b[i]);
}

/*
 * The eleven lines of the script; data[i] is what follows each message
 * line's fields (the data= part), NULL for none.
 */
static void
check_script(const char *file, const struct script *sc,
    const char *const data[11])
{
	char want[11][256];
	long P = sc->pid, T = getpid();
	int i;

	snprintf(want[0], 256, "type=1 peerid=11 pid=%ld len=5", P);
	snprintf(want[1], 256, "type=2 peerid=12 pid=%ld len=7", P);
	snprintf(want[2], 256, "type=3 peerid=13 pid=77 len=4");
	snprintf(want[3], 256, "type=4 peerid=14 pid=%ld len=8", P);
	snprintf(want[4], 256, "type=5 peerid=15 pid=%ld len=4 fd=%d", P,
	    sc->sentfd);
	snprintf(want[5], 256, "type=20 peerid=30 pid=%ld len=9 fd=%d", T,
	    sc->gotfd);
	snprintf(want[6], 256, "type=6 peerid=16 pid=%ld len=4", P);
	snprintf(want[7], 256, "type=21 peerid=31 pid=%ld len=6", T);
	snprintf(want[8], 256, "type=21 peerid=31 pid=%ld len=6", T);
	snprintf(want[9], 256, "type=22 peerid=32 pid=%ld len=3", T);
	want[10][0] = '\0';
	for (i = 0; i < 11; i++)
		if (data != NULL && data[i] != NULL)
			strcat(want[i], data[i]);
	CHECK_INT(read_trace(file), ==, 11);
	for (i = 0; i < 11; i++) {
		static const char *const ev[11] = { "send", "send", "send",
		    "send", "send", "recv", "send", "recv", "send", "recv",
		    "eof" };
		CHECK_LINE(i, P, ev[i], want[i]);
	}
}

static void
every_send_and_recv_is_traced_with_its_fields(void)
{
	struct script sc;

	CHECK_INT(run_script(TRACE_PEER, tmp("script.log"), NULL, -1, &sc),
	    ==, 0);
	/* Descriptors are where the peer's own numbers say. */
	CHECK_INT(sc.sentfd, >=, 0);
	CHECK_INT(sc.gotfd, >=, 0);
	check_script(tmp("script.log"), &sc, NULL);
}

static void
payload_is_hidden_by_default(void)
{
	struct script sc;

	CHECK_INT(run_script(TRACE_PEER, tmp("hidden.log"), NULL, -1, &sc),
	    ==, 0);
	CHECK(exists(tmp("hidden.log")));
	CHECK(!file_has(tmp("hidden.log"), "data="));
	CHECK(!file_has(tmp("hidden.log"), "topsecret"));
	CHECK(!file_has(tmp("hidden.log"), "hello"));
	/* Not a number: shows nothing either. */
	CHECK_INT(run_script(TRACE_PEER, tmp("badnum.log"), "lots", -1, &sc),
	    ==, 0);
	CHECK(!file_has(tmp("badnum.log"), "data="));
}

static void
trace_data_shows_the_first_n_bytes(void)
{
	struct script sc;
	char fd5[64], fd6[64];
	const char *const data[11] = { " data=\"hell\"", " data=\"abcd\"",
	    " data=\"wxyz\"", " data=\"1234\"", fd5, " data=\"tops\"", fd6,
	    " data=hex:010203ff", " data=hex:010203ff", " data=\"bye\"",
	    NULL };

	CHECK_INT(run_script(TRACE_PEER, tmp("data4.log"), "4", -1, &sc),
	    ==, 0);
	hex_int(fd5, sizeof(fd5), sc.sentfd);
	hex_int(fd6, sizeof(fd6), sc.gotfd);
	check_script(tmp("data4.log"), &sc, data);
}

static void
trace_data_shows_whole_payloads(void)
{
	struct script sc;
	char fd5[64], fd6[64];
	const char *const data[11] = { " data=\"hello\"",
	    " data=\"abcdefg\"", " data=\"wxyz\"", " data=\"12345678\"", fd5,
	    " data=\"topsecret\"", fd6, " data=hex:010203ff0010",
	    " data=hex:010203ff0010", " data=\"bye\"", NULL };

	CHECK_INT(run_script(TRACE_PEER, tmp("data100.log"), "100", -1, &sc),
	    ==, 0);
	hex_int(fd5, sizeof(fd5), sc.sentfd);
	hex_int(fd6, sizeof(fd6), sc.gotfd);
	check_script(tmp("data100.log"), &sc, data);
}

static void
statically_linked_program_is_traced(void)
{
	struct script sc;

	CHECK_INT(run_script(TRACE_PEER_STATIC, tmp("static.log"), NULL, -1,
	    &sc), ==, 0);
	check_script(tmp("static.log"), &sc, NULL);
}

static void
dash_traces_to_standard_error(void)
{
	struct script sc;
	int fd;

	if ((fd = open(tmp("stderr.txt"), O_RDWR | O_CREAT | O_TRUNC,
	    0600)) == -1)
		die("open");
	CHECK_INT(run_script(TRACE_PEER, "-", NULL, fd, &sc), ==, 0);
	close(fd);
	check_script(tmp("stderr.txt"), &sc, NULL);
	CHECK(!exists(tmp("-")));
}

/* ---- fork ------------------------------------------------------------- */

/* Our side of mode_fork: messages 1, 2 (from the child) and 3. */
static int
run_fork(const char *trace, long *child)
{
	struct imsgbuf ib;
	struct imsg m;
	struct peer p;
	char out[512];
	uint32_t t;

	peer_start(&p, TRACE_PEER, "fork", trace, NULL, -1);
	if (imsgbuf_init(&ib, p.sock) == -1)
		die("imsgbuf_init");
	for (t = 1; t <= 3; t++) {
		expect(&ib, t, &m);
		if (t == 2)
			*child = imsg_get_pid(&m);
		msg_free(&m);
	}
	imsgbuf_clear(&ib);
	CHECK_INT(peer_finish(&p, out, sizeof(out)), ==, 0);
	return p.pid;
}

static void
pid_in_path_gives_parent_and_child_their_files(void)
{
	char file[600], want[128];
	long P, Q = -1;

	P = run_fork(tmp("fork-%p.log"), &Q);
	CHECK_INT(Q, !=, P);
	CHECK_INT(count_entries(tmpdir, "fork-"), ==, 2);
	snprintf(file, sizeof(file), "%s/fork-%ld.log", tmpdir, P);
	CHECK_INT(read_trace(file), ==, 2);
	snprintf(want, sizeof(want), "type=1 peerid=1 pid=%ld len=0", P);
	CHECK_LINE(0, P, "send", want);
	snprintf(want, sizeof(want), "type=3 peerid=3 pid=%ld len=0", P);
	CHECK_LINE(1, P, "send", want);
	snprintf(file, sizeof(file), "%s/fork-%ld.log", tmpdir, Q);
	CHECK_INT(read_trace(file), ==, 1);
	snprintf(want, sizeof(want), "type=2 peerid=2 pid=%ld len=0", Q);
	CHECK_LINE(0, Q, "send", want);
}

static void
forked_child_shares_a_path_without_pid(void)
{
	char want[128];
	long P, Q = -1;

	P = run_fork(tmp("shared.log"), &Q);
	CHECK_INT(read_trace(tmp("shared.log")), ==, 3);
	snprintf(want, sizeof(want), "type=1 peerid=1 pid=%ld len=0", P);
	CHECK_LINE(0, P, "send", want);
	snprintf(want, sizeof(want), "type=2 peerid=2 pid=%ld len=0", Q);
	CHECK_LINE(1, Q, "send", want);
	snprintf(want, sizeof(want), "type=3 peerid=3 pid=%ld len=0", P);
	CHECK_LINE(2, P, "send", want);
}

/* ---- descriptors the program closes and reuses ------------------------- */

static void
reused_descriptor_receives_no_trace_byte(void)
{
	struct imsgbuf ib;
	struct imsg m;
	struct peer p;
	char out[512], want[128];

	peer_start(&p, TRACE_PEER, "closeall", tmp("closeall.log"), "16", -1);
	if (imsgbuf_init(&ib, p.sock) == -1)
		die("imsgbuf_init");
	expect(&ib, 1, &m);
	msg_free(&m);
	imsgbuf_clear(&ib);
	/* The peer checks its pipe; it says what it found there. */
	CHECK_INT(peer_finish(&p, out, sizeof(out)), ==, 0);
	if (out[0] != '\0')
		printf("#   %s", out);
	/* Nothing after the close reached the file either. */
	CHECK_INT(read_trace(tmp("closeall.log")), ==, 1);
	snprintf(want, sizeof(want), "type=1 peerid=1 pid=%ld len=0",
	    (long)p.pid);
	CHECK_LINE(0, p.pid, "send", want);
}

/* ---- errors and traces that cannot be written ------------------------- */

/* Our side of mode_errors; the peer's output goes to out. */
static int
run_errors(const char *trace, char *out, size_t size, long *pid)
{
	unsigned char wire[16 + 1 + 16];
	struct imsgbuf ib;
	struct imsg m;
	struct peer p;

	peer_start(&p, TRACE_PEER, "errors", trace, NULL, -1);
	*pid = p.pid;
	/* A good message and a header too short to be one, in one write. */
	put_hdr(wire, 40, 17, 0, 1);
	wire[16] = 'q';
	put_hdr(wire + 17, 99, 4, 0, 1);
	write_all(p.sock, wire, sizeof(wire));
	if (imsgbuf_init(&ib, p.sock) == -1)
		die("imsgbuf_init");
	expect(&ib, 41, &m);
	msg_free(&m);
	imsgbuf_clear(&ib);
	close(p.sock);
	p.sock = -1;
	return peer_finish(&p, out, size);
}

static void
errors_are_traced_with_errno_names(void)
{
	char out[1024], want[64];
	long P;

	CHECK_INT(run_errors(tmp("errors.log"), out, sizeof(out), &P), ==, 0);
	CHECK_INT(read_trace(tmp("errors.log")), ==, 6);
	CHECK_LINE(0, P, "recv", "type=40 peerid=0 pid=1 len=1");
	CHECK_LINE(1, P, "error", "read ERANGE");
	CHECK_LINE(2, P, "error", "read ERANGE");
	snprintf(want, sizeof(want), "type=41 peerid=0 pid=%ld len=1", P);
	CHECK_LINE(3, P, "send", want);
	snprintf(want, sizeof(want), "type=42 peerid=0 pid=%ld len=1", P);
	CHECK_LINE(4, P, "send", want);
	CHECK_LINE(5, P, "error", "write EPIPE");
}

static void
unwritable_trace_changes_no_result(void)
{
	char want[1024], got[1024];
	const char *traces[4];
	long P;
	int i;

	/* What the API returns untraced... */
	CHECK_INT(run_errors(NULL, want, sizeof(want), &P), ==, 0);
	CHECK(strstr(want, "write=-1") != NULL);
	/* ...is what it returns into a file, a full device, or nowhere. */
	traces[0] = strdup(tmp("results.log"));
	traces[1] = "/dev/full";
	traces[2] = strdup(tmp("no/such/dir/x.log"));
	traces[3] = tmpdir;
	if (traces[0] == NULL || traces[2] == NULL)
		die("strdup");
	for (i = 0; i < 4; i++) {
		CHECK_INT(run_errors(traces[i], got, sizeof(got), &P), ==, 0);
		if (strcmp(want, got) != 0)
			h_fail(__FILE__, __LINE__, "with %s:\n%s\nvs\n%s",
			    traces[i], got, want);
	}
	free((char *)traces[0]);
	free((char *)traces[2]);
	CHECK(exists(tmp("results.log")));
	CHECK(!exists(tmp("no")));
}

/* ---- unset, empty, set-user-ID ---------------------------------------- */

/* mode_fds: the peer's count of extra descriptors, -1 if none printed. */
static int
run_fds(const char *prog, const char *trace, const char *data, long *euid)
{
	struct peer p;
	char out[512];
	int n = -1;

	peer_start(&p, prog, "fds", trace, data, -1);
	CHECK_INT(peer_finish(&p, out, sizeof(out)), ==, 0);
	if (sscanf(out, "fds=%d euid=%ld", &n, euid) != 2)
		h_fail(__FILE__, __LINE__, "peer said: %s", out);
	return n;
}

static void
unset_or_empty_opens_and_writes_nothing(void)
{
	int before = count_entries(tmpdir, "");
	long euid;

	CHECK_INT(run_fds(TRACE_PEER, NULL, "100", &euid), ==, 0);
	CHECK_INT(run_fds(TRACE_PEER, "", "100", &euid), ==, 0);
	CHECK_INT(count_entries(tmpdir, ""), ==, before);
	/* The same count sees the trace when it is on. */
	CHECK_INT(run_fds(TRACE_PEER, tmp("fds.log"), NULL, &euid), ==, 1);
	CHECK(exists(tmp("fds.log")));
}

static void
setuid_program_ignores_both_variables(void)
{
	char prog[600], dir[600], trace[700], cmd[4096], out[512];
	struct peer p;
	long euid = -1;
	int r, n = -1;

	if (geteuid() != 0) {
		printf("# skip: needs root to make a set-user-ID copy\n");
		return;
	}
	if (SANITIZED) {
		/* It cannot read /proc/self of a set-user-ID process. */
		printf("# skip: sanitizers cannot run set-user-ID\n");
		return;
	}
	snprintf(prog, sizeof(prog), "%s/suid_peer", tmpdir);
	snprintf(dir, sizeof(dir), "%s/open", tmpdir);
	snprintf(trace, sizeof(trace), "%s/suid.log", dir);
	/* Anyone may create the trace there: only the variable stops it. */
	if (mkdir(dir, 0777) == -1 || chmod(dir, 0777) == -1)
		die("mkdir");
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chown 65534:65534 '%s' "
	    "&& chmod 06755 '%s' && chmod 0755 '%s'", TRACE_PEER, prog, prog,
	    prog, tmpdir);
	if (system(cmd) != 0)
		die("cp");
	peer_start(&p, prog, "fds", trace, "100", -1);
	r = peer_finish(&p, out, sizeof(out));
	if (r != 0 || sscanf(out, "fds=%d euid=%ld", &n, &euid) != 2 ||
	    euid != 65534) {
		/* valgrind, for one, refuses to run set-user-ID programs. */
		printf("# skip: could not run set-user-ID (status %d): %s\n",
		    r, out);
		return;
	}
	CHECK_INT(n, ==, 0);
	CHECK(!exists(trace));
}

/* ---- threads ---------------------------------------------------------- */

static void
threads_share_the_file_line_by_line(void)
{
	struct peer p;
	char out[512];
	int n, i, sends = 0, recvs = 0;
	long peerid;

	peer_start(&p, TRACE_PEER, "threads", tmp("threads.log"), NULL, -1);
	CHECK_INT(peer_finish(&p, out, sizeof(out)), ==, 0);
	n = read_trace(tmp("threads.log"));
	CHECK_INT(n, ==, 1600);
	for (i = 0; i < n; i++) {
		char want[128];

		peerid = strtol(lines[i].msg + strlen("type=2 peerid="), NULL,
		    10);
		snprintf(want, sizeof(want), "type=2 peerid=%ld pid=%ld len=1",
		    peerid, (long)p.pid);
		CHECK_STR(lines[i].msg, want);
		CHECK_INT(lines[i].pid, ==, p.pid);
		sends += strcmp(lines[i].event, "send") == 0;
		recvs += strcmp(lines[i].event, "recv") == 0;
	}
	CHECK_INT(sends, ==, 800);
	CHECK_INT(recvs, ==, 800);
}

/* Remove what the cases left in tmpdir, one level of subdirectories. */
static void
cleanup(const char *dir)
{
	char sub[600];
	DIR *d;
	struct dirent *de;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		if (unlink(sub) == -1 && errno == EISDIR)
			cleanup(sub);
		else if (errno == EPERM || errno == EISDIR)
			cleanup(sub);
	}
	closedir(d);
	(void)rmdir(dir);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, watchdog);
	alarm(100);
	t_start = time(NULL);
	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp");

	RUN(every_send_and_recv_is_traced_with_its_fields);
	RUN(payload_is_hidden_by_default);
	RUN(trace_data_shows_the_first_n_bytes);
	RUN(trace_data_shows_whole_payloads);
	RUN(statically_linked_program_is_traced);
	RUN(dash_traces_to_standard_error);
	RUN(pid_in_path_gives_parent_and_child_their_files);
	RUN(forked_child_shares_a_path_without_pid);
	RUN(reused_descriptor_receives_no_trace_byte);
	RUN(errors_are_traced_with_errno_names);
	RUN(unwritable_trace_changes_no_result);
	RUN(unset_or_empty_opens_and_writes_nothing);
	RUN(setuid_program_ignores_both_variables);
	RUN(threads_share_the_file_line_by_line);

	cleanup(tmpdir);
	return h_done();
}
