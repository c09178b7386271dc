/*
 * imsgcat, the real program from the build tree (IMSGCAT_PATH): over a
 * listening socket, an inherited descriptor and -e, with descriptors
 * passed and saved, the round trip of its own output, JSON read by a
 * real JSON parser (python3, when there is one), every kind of malformed
 * input line, a peer that sends garbage, -n, -w, -s and the usage
 * errors.  The peer is this test program through the library, another
 * imsgcat, or "cat" echoing the bytes back.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

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

#ifndef IMSGCAT_PATH
#error "IMSGCAT_PATH must name the imsgcat binary"
#endif

#define RUN_MS		10000	/* longest a run of imsgcat may take */
#define OUT_MAX		65536

static char tmpdir[64];

/* A running imsgcat, its pipes and what it has printed so far. */
struct proc {
	pid_t	 pid;
	int	 in;		/* its stdin, -1 when closed or /dev/null */
	int	 out, err;
	char	 obuf[OUT_MAX], ebuf[OUT_MAX];
	size_t	 olen, elen;
	int	 status;	/* exit status, 128 + signal, or -1 */
};

static void
bail(const char *what)
{
	printf("Bail out! %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(99);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the child: chanfd (if any) becomes 3, nothing else leaks in. */
static void
child_fds(int in, int out, int err, int chanfd)
{
	int fd;

	if (chanfd >= 0) {
		fd = fcntl(chanfd, F_DUPFD, 20);
		dup2(fd, 3);
		close(fd);
	}
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	for (fd = chanfd >= 0 ? 4 : 3; fd < 256; fd++)
		close(fd);
}

/*
 * Start imsgcat with args (NULL-terminated).  With input, its stdin is
 * a pipe (p->in); otherwise /dev/null.  chanfd >= 0 is its descriptor 3.
 */
static void
cat_start(struct proc *p, const char *const *args, int input, int chanfd)
{
	const char *argv[64];
	int ip[2], op[2], ep[2], i;

	memset(p, 0, sizeof(*p));
	argv[0] = IMSGCAT_PATH;
	for (i = 0; args[i] != NULL && i < 62; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	if (input ? pipe(ip) == -1 :
	    (ip[0] = open("/dev/null", O_RDONLY)) == -1)
		bail("stdin");
	if (!input)
		ip[1] = -1;
	if (pipe(op) == -1 || pipe(ep) == -1)
		bail("pipe");
	fflush(stdout);
	if ((p->pid = h_fork()) == -1)
		bail("fork");
	if (p->pid == 0) {
		child_fds(ip[0], op[1], ep[1], chanfd);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(ip[0]);
	close(op[1]);
	close(ep[1]);
	p->in = ip[1];
	p->out = op[0];
	p->err = ep[0];
	p->status = -1;
}

static void
proc_write(struct proc *p, const char *s)
{
	size_t n = strlen(s);

	if (write(p->in, s, n) != (ssize_t)n)
		bail("write to imsgcat");
}

static void
proc_close_input(struct proc *p)
{
	if (p->in != -1)
		close(p->in);
	p->in = -1;
}

/* Read what is there from out and err, waiting at most ms; 0 on EOF. */
static int
proc_pump(struct proc *p, int ms)
{
	struct pollfd pfd[2] = { { p->out, POLLIN, 0 }, { p->err, POLLIN, 0 } };
	char *buf[2] = { p->obuf, p->ebuf };
	size_t *len[2] = { &p->olen, &p->elen };
	int *fd[2] = { &p->out, &p->err };
	ssize_t n;
	int i;

	if (p->out == -1 && p->err == -1)
		return 0;
	if (poll(pfd, 2, ms) <= 0)
		return 1;
	for (i = 0; i < 2; i++) {
		if (*fd[i] == -1 || pfd[i].revents == 0)
			continue;
		n = read(*fd[i], buf[i] + *len[i], OUT_MAX - 1 - *len[i]);
		if (n <= 0) {
			close(*fd[i]);
			*fd[i] = -1;
			pfd[i].fd = -1;
			continue;
		}
		*len[i] += (size_t)n;
		buf[i][*len[i]] = '\0';
	}
	return 1;
}

/* Wait until stdout holds want; 0 if it does. */
static int
proc_wait_output(struct proc *p, const char *want)
{
	long long end = now_ms() + RUN_MS;

	while (strstr(p->obuf, want) == NULL && now_ms() < end)
		if (proc_pump(p, 100) == 0)
			break;
	return strstr(p->obuf, want) != NULL ? 0 : -1;
}

/* Collect everything and the exit status; a hung imsgcat is killed. */
static void
cat_finish(struct proc *p)
{
	long long end = now_ms() + RUN_MS;
	int ws;

	proc_close_input(p);
	while (now_ms() < end && proc_pump(p, 100))
		;
	if (p->out != -1 || p->err != -1) {
		h_fail(__FILE__, __LINE__, "imsgcat hung; killed");
		kill(p->pid, SIGKILL);
	}
	if (p->out != -1)
		close(p->out);
	if (p->err != -1)
		close(p->err);
	p->out = p->err = -1;
	while (waitpid(p->pid, &ws, 0) == -1)
		if (errno != EINTR)
			bail("waitpid");
	p->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* Run to the end with input (NULL: /dev/null) and chanfd as fd 3. */
static void
cat_run(struct proc *p, const char *const *args, const char *input,
    int chanfd)
{
	cat_start(p, args, input != NULL, chanfd);
	if (input != NULL)
		proc_write(p, input);
	cat_finish(p);
}

/* ---- the test program as a peer ---------------------------------------- */

struct peer {
	int		 sv[2];	/* sv[0] ours, sv[1] imsgcat's fd 3 */
	struct imsgbuf	 ib;
};

static void
peer_open(struct peer *pe)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pe->sv) == -1)
		bail("socketpair");
	if (imsgbuf_init(&pe->ib, pe->sv[0]) == -1)
		bail("imsgbuf_init");
	imsgbuf_allow_fdpass(&pe->ib);
	pe->ib.pid = 0;		/* so the printed lines do not vary */
}

/* imsgcat has its copy now. */
static void
peer_started(struct peer *pe)
{
	close(pe->sv[1]);
	pe->sv[1] = -1;
}

static void
peer_close(struct peer *pe)
{
	imsgbuf_clear(&pe->ib);
	close(pe->sv[0]);
	if (pe->sv[1] != -1)
		close(pe->sv[1]);
}

static void
peer_send(struct peer *pe, uint32_t type, int fd, const void *data,
    size_t len)
{
	if (imsg_compose(&pe->ib, type, 0, 0, fd, data, len) == -1 ||
	    imsgbuf_flush(&pe->ib) == -1)
		bail("peer_send");
}

/*
 * Receive until EOF: types[] gets each message's type, and the first
 * payload goes to data0 (when not NULL).  Returns the count, or -1.
 */
static int
peer_recv_all(struct peer *pe, uint32_t *types, int max, char *data0,
    size_t size0)
{
	struct pollfd pfd = { pe->sv[0], POLLIN, 0 };
	struct imsg m;
	ssize_t n;
	int count = 0, r;

	for (;;) {
		while ((n = imsg_get(&pe->ib, &m)) > 0) {
			if (count == 0 && data0 != NULL &&
			    imsg_get_len(&m) < size0) {
				memcpy(data0, m.data, imsg_get_len(&m));
				data0[imsg_get_len(&m)] = '\0';
			}
			if (count < max)
				types[count] = imsg_get_type(&m);
			count++;
			imsg_free(&m);
		}
		if (n == -1 || poll(&pfd, 1, RUN_MS) != 1)
			return -1;
		/*
		 * imsgcat leaving with our messages unread makes the end a
		 * reset; what it sent before is read first all the same.
		 */
		r = imsgbuf_read(&pe->ib);
		if (r == 0 || (r == -1 && errno == ECONNRESET)) {
			while (imsg_get(&pe->ib, &m) > 0) {
				if (count < max)
					types[count] = imsg_get_type(&m);
				count++;
				imsg_free(&m);
			}
			return count;
		}
		if (r == -1)
			return -1;
	}
}

/* ---- helpers for paths -------------------------------------------------- */

static const char *
tpath(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static void
write_file(const char *path, const char *content)
{
	FILE *f;

	if ((f = fopen(path, "w")) == NULL)
		bail(path);
	fputs(content, f);
	fclose(f);
}

/* Wait for the listener's socket to appear (and to be listening). */
static int
wait_socket(const char *path)
{
	long long end = now_ms() + RUN_MS;
	struct stat st;

	while (stat(path, &st) == -1 || !S_ISSOCK(st.st_mode)) {
		if (now_ms() > end)
			return -1;
		usleep(10000);
	}
	usleep(50000);	/* bind comes just before listen */
	return 0;
}

/* ---- where it talks ----------------------------------------------------- */

static void
listen_and_connect_exchange_messages(void)
{
	const char *sock = tpath("s1");
	const char *largs[] = { "-l", "-n", "1", sock, NULL };
	const char *cargs[] = { "-n", "1", "-m", "type=8 data=\"from client\"",
	    sock, NULL };
	struct proc l, c;

	cat_start(&l, largs, 1, -1);
	proc_write(&l, "type=7 peerid=3 data=\"from listener\"\n");
	CHECK_INT(wait_socket(sock), ==, 0);
	cat_run(&c, cargs, NULL, -1);
	cat_finish(&l);
	CHECK_INT(c.status, ==, 0);
	CHECK_INT(l.status, ==, 0);
	CHECK_STR(c.obuf, "type=7 peerid=3 pid=0 len=13 "
	    "data=\"from listener\"\n");
	CHECK_STR(l.obuf, "type=8 peerid=0 pid=0 len=11 data=\"from client\"\n");
	CHECK_STR(c.ebuf, "");
	CHECK_STR(l.ebuf, "");
	/* The listener removed the socket it made. */
	CHECK_INT(access(sock, F_OK), ==, -1);
}

static void
listen_refuses_existing_path_and_keeps_it(void)
{
	const char *path = tpath("taken");
	const char *args[] = { "-l", path, NULL };
	struct proc p;

	write_file(path, "mine\n");
	cat_run(&p, args, NULL, -1);
	CHECK_INT(p.status, ==, 1);
	CHECK(strncmp(p.ebuf, "imsgcat: ", 9) == 0);
	CHECK(strstr(p.ebuf, strerror(EADDRINUSE)) != NULL);
	CHECK_INT(access(path, F_OK), ==, 0);
	unlink(path);
}

static void
connect_to_missing_socket_fails_with_status_1(void)
{
	const char *args[] = { "-m", "type=1", tpath("nosuch"), NULL };
	struct proc p;

	cat_run(&p, args, NULL, -1);
	CHECK_INT(p.status, ==, 1);
	CHECK(strstr(p.ebuf, "nosuch: No such file or directory\n") != NULL);
	CHECK_STR(p.obuf, "");
}

static void
inherited_fd_talks_to_peer(void)
{
	const char *args[] = { "-f", "3", "-n", "1", "-m",
	    "type=0x20 peerid=5 pid=6 data=hex:00ff", NULL };
	uint32_t types[4];
	struct peer pe;
	struct proc p;
	char data[8];

	peer_open(&pe);
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	peer_send(&pe, 99, -1, "hi\tthere\n", 9);
	cat_finish(&p);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "type=99 peerid=0 pid=0 len=9 "
	    "data=\"hi\\tthere\\n\"\n");
	CHECK_INT(peer_recv_all(&pe, types, 4, data, sizeof(data)), ==, 1);
	CHECK_UINT(types[0], ==, 0x20);
	peer_close(&pe);
}

/* ---- descriptors -------------------------------------------------------- */

static void
passed_descriptor_is_saved_with_F(void)
{
	const char *sock = tpath("s2"), *file = tpath("content.txt");
	const char *dir = tpath("saved");
	char msg[300], want[300], saved[256], buf[64];
	const char *largs[] = { "-l", "-n", "1", "-F", dir, sock, NULL };
	const char *cargs[] = { "-n", "0", "-m", msg, sock, NULL };
	struct proc l, c;
	FILE *f;
	size_t n;

	mkdir(dir, 0700);
	write_file(file, "the file's content\n");
	snprintf(msg, sizeof(msg), "type=4 fd=@%s data=\"x\"", file);
	cat_start(&l, largs, 0, -1);
	CHECK_INT(wait_socket(sock), ==, 0);
	cat_run(&c, cargs, NULL, -1);
	cat_finish(&l);
	CHECK_INT(c.status, ==, 0);
	CHECK_INT(l.status, ==, 0);
	snprintf(want, sizeof(want), "type=4 peerid=0 pid=0 len=1 fd=@%s/file.",
	    dir);
	CHECK(strncmp(l.obuf, want, strlen(want)) == 0);
	CHECK(strstr(l.obuf, " data=\"x\"\n") != NULL);
	/* The saved file holds what the descriptor gave. */
	if (sscanf(l.obuf, "type=4 peerid=0 pid=0 len=1 fd=@%255s", saved) ==
	    1 && (f = fopen(saved, "r")) != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		CHECK_STR(buf, "the file's content\n");
		unlink(saved);
	} else
		CHECK(!"no saved file named");
	unlink(file);
	rmdir(dir);
}

static void
received_descriptor_prints_kind_and_is_closed(void)
{
	const char *args[] = { "-f", "3", "-n", "2", NULL };
	struct peer pe;
	struct proc p;
	ssize_t r = 0;
	int pp[2], i;

	peer_open(&pe);
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	if (pipe(pp) == -1)
		bail("pipe");
	/* The library closes our copy of the read end once sent. */
	peer_send(&pe, 1, pp[0], "p", 1);
	CHECK_INT(proc_wait_output(&p, "\n"), ==, 0);
	CHECK(strstr(p.obuf, " fd=") != NULL);
	CHECK(strstr(p.obuf, ":pipe data=\"p\"\n") != NULL);
	/*
	 * imsgcat closes it right after printing, while it still waits for
	 * the second message: no reader is left within moments.
	 */
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < 200 && (r = write(pp[1], "x", 1)) == 1; i++)
		usleep(10000);
	CHECK_INT(r, ==, -1);
	CHECK_INT(errno, ==, EPIPE);
	close(pp[1]);
	peer_send(&pe, 2, -1, NULL, 0);
	cat_finish(&p);
	CHECK_INT(p.status, ==, 0);
	peer_close(&pe);
}

/* ---- the round trip and JSON ------------------------------------------- */

/* An echo peer: cat sends every byte back (descriptors are lost). */
#define ECHO	"-e", "sh", "-c", "exec cat <&3 >&3"

static const char round_input[] =
	"type=1 peerid=2 pid=3 data=\"hello\"\n"
	"data=\"q\\\"b\\\\s\\n\\t end\" type=0x10\n"
	"type=4294967295 peerid=4294967295 pid=4294967295\n"
	"type=5 data=hex:000102fffe7f80\n"
	"type=6 data=\"\\r is not text\"\n"
	"# a comment, and a blank line\n"
	"\n"
	"type=7 data=\"\"\n";

static void
output_resent_gives_same_output(void)
{
	const char *args[] = { "-n", "6", ECHO, NULL };
	struct proc a, b;

	cat_run(&a, args, round_input, -1);
	CHECK_INT(a.status, ==, 0);
	CHECK_STR(a.obuf,
	    "type=1 peerid=2 pid=3 len=5 data=\"hello\"\n"
	    "type=16 peerid=0 pid=0 len=11 data=\"q\\\"b\\\\s\\n\\t end\"\n"
	    "type=4294967295 peerid=4294967295 pid=4294967295 len=0\n"
	    "type=5 peerid=0 pid=0 len=7 data=hex:000102fffe7f80\n"
	    "type=6 peerid=0 pid=0 len=13 "
	    "data=hex:0d206973206e6f742074657874\n"
	    "type=7 peerid=0 pid=0 len=0\n");
	CHECK_STR(a.ebuf, "");
	cat_run(&b, args, a.obuf, -1);
	CHECK_INT(b.status, ==, 0);
	CHECK_STR(b.obuf, a.obuf);
	CHECK_STR(b.ebuf, "");
}

/* A big payload (hex and text) survives the trip too. */
static void
large_payload_round_trips(void)
{
	const char *args[] = { "-n", "1", "-s", "40000", ECHO, NULL };
	static char in[80000];
	struct proc a, b;
	size_t i, n;

	n = (size_t)snprintf(in, sizeof(in), "type=9 data=hex:");
	for (i = 0; i < 30000; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "%02x",
		    (unsigned)(i * 7 % 256));
	snprintf(in + n, sizeof(in) - n, "\n");
	cat_run(&a, args, in, -1);
	CHECK_INT(a.status, ==, 0);
	CHECK(strncmp(a.obuf, "type=9 peerid=0 pid=0 len=30000 data=hex:0007",
	    45) == 0);
	CHECK_UINT(a.olen, ==, strlen("type=9 peerid=0 pid=0 len=30000 "
	    "data=hex:") + 60000 + 1);
	cat_run(&b, args, a.obuf, -1);
	CHECK_INT(b.status, ==, 0);
	CHECK_STR(b.obuf, a.obuf);
}

static int
have_python3(void)
{
	return system("command -v python3 >/dev/null 2>&1") == 0;
}

/* What python3's json module makes of each line, one summary per line. */
static const char json_check[] =
	"import json, sys\n"
	"for line in sys.stdin:\n"
	"    o = json.loads(line)\n"
	"    assert list(o) == ['type','peerid','pid','len','fd','data'], o\n"
	"    for k in ('type','peerid','pid','len'):\n"
	"        assert type(o[k]) is int, k\n"
	"    d = bytes.fromhex(o['data'])\n"
	"    assert len(d) == o['len']\n"
	"    fd = o['fd']\n"
	"    kind = 'null' if fd is None else fd['kind']\n"
	"    if fd is not None:\n"
	"        assert type(fd['number']) is int and fd['number'] >= 0\n"
	"    print(o['type'], o['peerid'], o['pid'], o['len'], kind, d)\n";

static void
json_lines_parse_with_a_real_json_parser(void)
{
	const char *args[] = { "-j", "-f", "3", "-n", "3", NULL };
	char cmd[512], out[1024];
	struct peer pe;
	struct proc p;
	FILE *f;
	size_t n;
	int pp[2];

	if (!have_python3()) {
		printf("# python3 not found: JSON not checked by a parser\n");
		return;
	}
	peer_open(&pe);
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	if (pipe(pp) == -1)
		bail("pipe");
	peer_send(&pe, 1, -1, "hello", 5);
	peer_send(&pe, 2, pp[0], "\"\\\x01", 3);
	peer_send(&pe, 3, -1, NULL, 0);
	close(pp[1]);
	cat_finish(&p);
	peer_close(&pe);
	CHECK_INT(p.status, ==, 0);
	CHECK(strncmp(p.obuf, "{\"type\":1,\"peerid\":0,\"pid\":0,\"len\":5,"
	    "\"fd\":null,\"data\":\"68656c6c6f\"}\n", 67) == 0);
	write_file(tpath("json.out"), p.obuf);
	write_file(tpath("check.py"), json_check);
	snprintf(cmd, sizeof(cmd), "python3 %s < %s", tpath("check.py"),
	    tpath("json.out"));
	if ((f = popen(cmd, "r")) == NULL)
		bail("popen");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	CHECK_INT(pclose(f), ==, 0);
	CHECK_STR(out, "1 0 0 5 null b'hello'\n"
	    "2 0 0 3 pipe b'\"\\\\\\x01'\n"
	    "3 0 0 0 null b''\n");
	unlink(tpath("json.out"));
	unlink(tpath("check.py"));
}

/* ---- -e ----------------------------------------------------------------- */

/* Another imsgcat, on the descriptor -e gives it, is the peer. */
static void
exec_runs_a_peer_on_descriptor_3(void)
{
	char cmd[512];
	const char *args[] = { "-n", "1", "-m", "type=3 data=\"ping\"",
	    "-e", "sh", "-c", cmd, NULL };
	struct proc p;
	FILE *f;
	char line[256] = "";

	snprintf(cmd, sizeof(cmd), "exec %s -f 3 -n 1 -m 'type=4 "
	    "data=\"pong\"' > %s", IMSGCAT_PATH, tpath("child.out"));
	cat_run(&p, args, NULL, -1);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "type=4 peerid=0 pid=0 len=4 data=\"pong\"\n");
	if ((f = fopen(tpath("child.out"), "r")) != NULL) {
		if (fgets(line, sizeof(line), f) == NULL)
			line[0] = '\0';
		fclose(f);
	}
	CHECK_STR(line, "type=3 peerid=0 pid=0 len=4 data=\"ping\"\n");
	unlink(tpath("child.out"));
}

static void
exec_d_picks_the_descriptor(void)
{
	char cmd[512];
	const char *args[] = { "-n", "1", "-m", "type=3", "-d", "5",
	    "-e", "sh", "-c", cmd, NULL };
	struct proc p;

	snprintf(cmd, sizeof(cmd), "exec %s -f 5 -n 1 -m type=12 >/dev/null",
	    IMSGCAT_PATH);
	cat_run(&p, args, NULL, -1);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "type=12 peerid=0 pid=0 len=0\n");
}

/* What follows -e COMMAND belongs to the command, options or not. */
static void
exec_passes_arguments_untouched(void)
{
	const char *args[] = { "-n", "1", "-e", "sh", "-c",
	    "printf '%s\\n' \"$@\" >&2; exec cat <&3 >&3", "sh", "-n", "-m",
	    "x", NULL };
	struct proc p;

	cat_start(&p, args, 1, -1);
	proc_write(&p, "type=1\n");
	cat_finish(&p);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.ebuf, "-n\n-m\nx\n");
	CHECK_STR(p.obuf, "type=1 peerid=0 pid=0 len=0\n");
}

static void
exec_of_missing_command_fails_with_status_1(void)
{
	const char *args[] = { "-e", "/nonexistent/command", NULL };
	struct proc p;

	cat_run(&p, args, NULL, -1);
	CHECK_INT(p.status, ==, 1);
	CHECK_STR(p.ebuf, "imsgcat: /nonexistent/command: "
	    "No such file or directory\n");
}

/* ---- malformed input ---------------------------------------------------- */

/*
 * Line 2 is bad: exit status 2, a message naming line 2 and the problem,
 * line 1 delivered and line 3 not.
 */
static void
check_bad_line(const char *bad, const char *want, int srcline)
{
	const char *args[] = { "-f", "3", NULL };
	char input[512], msg[512], data[32] = "";
	uint32_t types[4];
	struct peer pe;
	struct proc p;
	int n;

	snprintf(input, sizeof(input), "type=1 data=\"before\"\n%s\n"
	    "type=3 data=\"after\"\n", bad);
	snprintf(msg, sizeof(msg), "imsgcat: line 2: %s", want);
	peer_open(&pe);
	cat_start(&p, args, 1, pe.sv[1]);
	peer_started(&pe);
	proc_write(&p, input);
	cat_finish(&p);
	n = peer_recv_all(&pe, types, 4, data, sizeof(data));
	peer_close(&pe);
	if (p.status != 2 || strncmp(p.ebuf, msg, strlen(msg)) != 0 ||
	    strchr(p.ebuf, '\n') != p.ebuf + p.elen - 1)
		h_fail(__FILE__, srcline, "'%s': status %d, stderr '%s', "
		    "want 2 and '%s'", bad, p.status, p.ebuf, msg);
	if (n != 1 || types[0] != 1 || strcmp(data, "before") != 0)
		h_fail(__FILE__, srcline, "'%s': the peer got %d message(s), "
		    "want only line 1", bad, n);
}
#define BAD_LINE(bad, want)	check_bad_line((bad), (want), __LINE__)

static void
malformed_lines_exit_2_naming_line_and_problem(void)
{
	BAD_LINE("peerid=1", "missing type=");
	BAD_LINE("type=1 colour=red", "unknown field 'colour'");
	BAD_LINE("type=1 junk", "'junk' is not a name=value field");
	BAD_LINE("type=1 type=2", "type= given twice");
	BAD_LINE("type=one", "type: bad number 'one'");
	BAD_LINE("type=0x", "type: missing number");
	BAD_LINE("type=-1", "type: bad number");
	BAD_LINE("type=4294967296", "type: number out of range");
	BAD_LINE("type=1 peerid=0x1ffffffff", "peerid: number out of range");
	BAD_LINE("type=1 pid=1.5", "pid: bad number");
	BAD_LINE("type=1 data=\"open", "data: unterminated string");
	BAD_LINE("type=1 data=\"\\q\"", "data: unknown escape '\\q'");
	BAD_LINE("type=1 data=\"\\x4\"", "data: \\x needs two hex digits");
	BAD_LINE("type=1 data=\"a\"b", "data: text after the closing quote");
	BAD_LINE("type=1 data=hex:abc", "data: odd number of hex digits");
	BAD_LINE("type=1 data=hex:zz", "data: bad hex digit");
	BAD_LINE("type=1 data=text", "data: value must be");
	BAD_LINE("type=1 data=@", "data: missing file name after @");
	BAD_LINE("type=1 data=@/nonexistent/f",
	    "data=@/nonexistent/f: No such file or directory");
	BAD_LINE("type=1 fd=@/nonexistent/f",
	    "fd=@/nonexistent/f: No such file or directory");
	BAD_LINE("type=1 fd=@", "fd: missing path after @");
	BAD_LINE("type=1 fd=200", "fd=200: Bad file descriptor");
	BAD_LINE("type=1 fd=x", "fd: bad number");
	BAD_LINE("type=1 len=2 data=\"abc\"", "len=2 but the payload has 3");
}

static void
oversized_line_message_exits_2(void)
{
	const char *args[] = { "-f", "3", "-s", "4", NULL };
	uint32_t types[4];
	struct peer pe;
	struct proc p;

	peer_open(&pe);
	cat_start(&p, args, 1, pe.sv[1]);
	peer_started(&pe);
	proc_write(&p, "type=1 data=\"1234\"\ntype=2 data=\"12345\"\ntype=3\n");
	cat_finish(&p);
	CHECK_INT(p.status, ==, 2);
	CHECK_STR(p.ebuf, "imsgcat: line 2: message too large (5 bytes of "
	    "data; the limit is 4, see -s)\n");
	CHECK_INT(peer_recv_all(&pe, types, 4, NULL, 0), ==, 1);
	peer_close(&pe);
}

static void
malformed_m_option_sends_nothing(void)
{
	const char *args[] = { "-f", "3", "-m", "type=1", "-m", "type=2 x",
	    NULL };
	uint32_t types[4];
	struct peer pe;
	struct proc p;

	peer_open(&pe);
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	cat_finish(&p);
	CHECK_INT(p.status, ==, 2);
	CHECK_STR(p.ebuf, "imsgcat: -m 2: 'x' is not a name=value field\n");
	CHECK_INT(peer_recv_all(&pe, types, 4, NULL, 0), ==, 0);
	peer_close(&pe);
}

/* ---- a peer that sends garbage ----------------------------------------- */

static void
check_garbage(const void *bytes, size_t len, const char *want, int srcline)
{
	const char *args[] = { "-f", "3", NULL };
	struct peer pe;
	struct proc p;

	peer_open(&pe);
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	if (write(pe.sv[0], bytes, len) != (ssize_t)len)
		bail("write garbage");
	cat_finish(&p);
	peer_close(&pe);
	if (p.status != 1 || strncmp(p.ebuf, want, strlen(want)) != 0 ||
	    strchr(p.ebuf, '\n') != p.ebuf + p.elen - 1)
		h_fail(__FILE__, srcline, "status %d, stderr '%s', want 1 and "
		    "'%s...'", p.status, p.ebuf, want);
}

static void
garbage_from_peer_is_a_clear_error_and_status_1(void)
{
	/* type, len, peerid, pid in host order, as on the wire. */
	uint32_t shortlen[4] = { 1, 5, 0, 0 };
	uint32_t hugelen[4] = { 1, 0x7fffff00, 0, 0 };
	char text[64], want[160];

	memset(text, 'A', sizeof(text));
	/* The C library's own words for ERANGE (glibc and musl differ). */
	snprintf(want, sizeof(want), "imsgcat: read: %s (the peer sent a bad "
	    "header", strerror(ERANGE));
	check_garbage(shortlen, sizeof(shortlen), want, __LINE__);
	snprintf(want, sizeof(want), "imsgcat: read: %s", strerror(ERANGE));
	check_garbage(hugelen, sizeof(hugelen), want, __LINE__);
	/* "AAAA" as a length is over the limit too. */
	check_garbage(text, sizeof(text), "imsgcat: read: ", __LINE__);
}

static void
s_raises_the_receive_limit(void)
{
	const char *small[] = { "-f", "3", NULL };
	const char *big[] = { "-f", "3", "-n", "1", "-s", "20000", NULL };
	static char payload[20000];
	struct peer pe;
	struct proc p;

	memset(payload, 'z', sizeof(payload));
	peer_open(&pe);
	imsgbuf_set_maxsize(&pe.ib, sizeof(payload));
	cat_start(&p, small, 0, pe.sv[1]);
	peer_started(&pe);
	peer_send(&pe, 1, -1, payload, sizeof(payload));
	cat_finish(&p);
	peer_close(&pe);
	CHECK_INT(p.status, ==, 1);
	CHECK(strstr(p.ebuf, "see -s") != NULL);

	peer_open(&pe);
	imsgbuf_set_maxsize(&pe.ib, sizeof(payload));
	cat_start(&p, big, 0, pe.sv[1]);
	peer_started(&pe);
	peer_send(&pe, 1, -1, payload, sizeof(payload));
	cat_finish(&p);
	peer_close(&pe);
	CHECK_INT(p.status, ==, 0);
	CHECK(strncmp(p.obuf, "type=1 peerid=0 pid=0 len=20000 data=\"zzz",
	    41) == 0);
}

/* ---- -n, -w, EOF -------------------------------------------------------- */

static void
n_0_with_m_sends_and_exits_without_reading_stdin(void)
{
	const char *args[] = { "-f", "3", "-n", "0", "-m", "type=1",
	    "-m", "type=2", NULL };
	uint32_t types[4];
	struct peer pe;
	struct proc p;
	long long t0;

	peer_open(&pe);
	/* Its stdin is a pipe that stays open: it must not wait for it. */
	cat_start(&p, args, 1, pe.sv[1]);
	peer_started(&pe);
	t0 = now_ms();
	while (proc_pump(&p, 100) && now_ms() - t0 < RUN_MS)
		;
	CHECK_INT(now_ms() - t0, <, RUN_MS);
	cat_finish(&p);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "");
	CHECK_INT(peer_recv_all(&pe, types, 4, NULL, 0), ==, 2);
	CHECK_UINT(types[0], ==, 1);
	CHECK_UINT(types[1], ==, 2);
	peer_close(&pe);
}

static void
n_0_without_m_sends_stdin_and_exits(void)
{
	const char *args[] = { "-f", "3", "-n", "0", NULL };
	uint32_t types[4];
	struct peer pe;
	struct proc p;

	peer_open(&pe);
	cat_start(&p, args, 1, pe.sv[1]);
	peer_started(&pe);
	peer_send(&pe, 50, -1, NULL, 0);	/* not printed */
	proc_write(&p, "type=5\ntype=6");	/* no final newline */
	cat_finish(&p);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "");
	CHECK_INT(peer_recv_all(&pe, types, 4, NULL, 0), ==, 2);
	CHECK_UINT(types[1], ==, 6);
	peer_close(&pe);
}

static void
n_count_stops_after_count_messages(void)
{
	const char *args[] = { "-f", "3", "-n", "2", NULL };
	struct peer pe;
	struct proc p;

	peer_open(&pe);
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	peer_send(&pe, 1, -1, NULL, 0);
	peer_send(&pe, 2, -1, NULL, 0);
	peer_send(&pe, 3, -1, NULL, 0);
	cat_finish(&p);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "type=1 peerid=0 pid=0 len=0\n"
	    "type=2 peerid=0 pid=0 len=0\n");
	peer_close(&pe);
}

static void
w_exits_after_seconds_of_silence(void)
{
	const char *args[] = { "-f", "3", "-w", "0.3", NULL };
	struct peer pe;
	struct proc p;
	long long t0, dt;

	peer_open(&pe);
	t0 = now_ms();
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	peer_send(&pe, 1, -1, NULL, 0);
	usleep(200000);
	peer_send(&pe, 2, -1, NULL, 0);	/* restarts the clock */
	cat_finish(&p);
	dt = now_ms() - t0;
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "type=1 peerid=0 pid=0 len=0\n"
	    "type=2 peerid=0 pid=0 len=0\n");
	CHECK_INT(dt, >=, 450);
	CHECK_INT(dt, <, 5000);
	peer_close(&pe);
}

static void
peer_eof_ends_with_status_0(void)
{
	const char *args[] = { "-f", "3", NULL };
	struct peer pe;
	struct proc p;

	peer_open(&pe);
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	peer_send(&pe, 9, -1, "bye", 3);
	imsgbuf_clear(&pe.ib);
	close(pe.sv[0]);
	cat_finish(&p);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "type=9 peerid=0 pid=0 len=3 data=\"bye\"\n");
	CHECK_STR(p.ebuf, "");
}

static void
closed_stdout_is_an_error_not_a_signal(void)
{
	const char *args[] = { "-f", "3", NULL };
	struct peer pe;
	struct proc p;
	int i;

	peer_open(&pe);
	cat_start(&p, args, 0, pe.sv[1]);
	peer_started(&pe);
	close(p.out);
	p.out = -1;
	for (i = 0; i < 3; i++)
		peer_send(&pe, 1, -1, "x", 1);
	cat_finish(&p);
	CHECK_INT(p.status, ==, 1);
	CHECK_STR(p.ebuf, "imsgcat: stdout: Broken pipe\n");
	peer_close(&pe);
}

/* ---- the command line --------------------------------------------------- */

static void
check_usage(const char *const *args, int status, int srcline)
{
	struct proc p;

	cat_run(&p, args, NULL, -1);
	if (p.status != status || (status == 2 &&
	    strstr(p.ebuf, "usage: imsgcat") == NULL && strncmp(p.ebuf,
	    "imsgcat: ", 9) != 0))
		h_fail(__FILE__, srcline, "status %d (want %d), stderr '%s'",
		    p.status, status, p.ebuf);
}

static void
usage_errors_exit_2_and_h_V_exit_0(void)
{
	const char *none[] = { NULL };
	const char *two[] = { "a", "b", NULL };
	const char *badn[] = { "-n", "x", "p", NULL };
	const char *badw[] = { "-w", "-1", "p", NULL };
	const char *d[] = { "-d", "4", "p", NULL };
	const char *lf[] = { "-l", "-f", "3", NULL };
	const char *fpath[] = { "-f", "3", "p", NULL };
	const char *unknown[] = { "-Z", "p", NULL };
	const char *bigs[] = { "-s", "0x7ffffff0", "p", NULL };
	const char *h[] = { "-h", NULL };
	const char *v[] = { "-V", NULL };
	struct proc p;

	check_usage(none, 2, __LINE__);
	check_usage(two, 2, __LINE__);
	check_usage(badn, 2, __LINE__);
	check_usage(badw, 2, __LINE__);
	check_usage(d, 2, __LINE__);
	check_usage(lf, 2, __LINE__);
	check_usage(fpath, 2, __LINE__);
	check_usage(unknown, 2, __LINE__);
	check_usage(bigs, 2, __LINE__);
	cat_run(&p, h, NULL, -1);
	CHECK_INT(p.status, ==, 0);
	CHECK(strncmp(p.obuf, "usage: imsgcat", 14) == 0);
	cat_run(&p, v, NULL, -1);
	CHECK_INT(p.status, ==, 0);
	CHECK_STR(p.obuf, "imsgcat " LIBIMSG_VERSION "\n");
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_imsgcat.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		bail("mkdtemp");
	RUN(listen_and_connect_exchange_messages);
	RUN(listen_refuses_existing_path_and_keeps_it);
	RUN(connect_to_missing_socket_fails_with_status_1);
	RUN(inherited_fd_talks_to_peer);
	RUN(passed_descriptor_is_saved_with_F);
	RUN(received_descriptor_prints_kind_and_is_closed);
	RUN(output_resent_gives_same_output);
	RUN(large_payload_round_trips);
	RUN(json_lines_parse_with_a_real_json_parser);
	RUN(exec_runs_a_peer_on_descriptor_3);
	RUN(exec_d_picks_the_descriptor);
	RUN(exec_passes_arguments_untouched);
	RUN(exec_of_missing_command_fails_with_status_1);
	RUN(malformed_lines_exit_2_naming_line_and_problem);
	RUN(oversized_line_message_exits_2);
	RUN(malformed_m_option_sends_nothing);
	RUN(garbage_from_peer_is_a_clear_error_and_status_1);
	RUN(s_raises_the_receive_limit);
	RUN(n_0_with_m_sends_and_exits_without_reading_stdin);
	RUN(n_0_without_m_sends_stdin_and_exits);
	RUN(n_count_stops_after_count_messages);
	RUN(w_exits_after_seconds_of_silence);
	RUN(peer_eof_ends_with_status_0);
	RUN(closed_stdout_is_an_error_not_a_signal);
	RUN(usage_errors_exit_2_and_h_V_exit_0);
	if (rmdir(tmpdir) == -1)
		printf("# %s left behind: %s\n", tmpdir, strerror(errno));
	return h_done();
}
