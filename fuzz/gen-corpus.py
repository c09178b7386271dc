#!/usr/bin/env python3
"""Write the hand-made seeds of fuzz/corpus/fuzz_read/ and
fuzz/corpus/fuzz_ibuf/ (see fuzz_read.c and fuzz_ibuf.c for the input
formats).  Inputs found by fuzzing are kept as they are; rerunning this
only rewrites the files named seed-* and regress-*."""
import os
import struct
import subprocess
import sys
import tempfile

MARK = 0x80000000
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "fuzz_read")
out_ibuf = os.path.join(here, "corpus", "fuzz_ibuf")


def cfg(fdpass=0, limit=0, imsg_get=0, leave=0, ibufq=0,
        fwd=0, fwd_fdpass=0, fwd_limit=0, pipe=0, custom=0, fwd_pipe=0,
        seed=1, hold=0):
    c0 = (fdpass | limit << 1 | imsg_get << 4 | leave << 5 | ibufq << 6 |
          hold << 7)
    c1 = (fwd | fwd_fdpass << 1 | fwd_limit << 2 | pipe << 5 | custom << 6 |
          fwd_pipe << 7)
    return bytes([c0, c1]) + struct.pack("<I", seed)


def hdr(type_, length, peerid=0, pid=0):
    return struct.pack("<IIII", type_, length & 0xffffffff, peerid, pid)


def msg(type_, payload=b"", peerid=0, pid=0, mark=False):
    n = 16 + len(payload)
    return hdr(type_, n | (MARK if mark else 0), peerid, pid) + payload


def ctl(nfds=0, built=0, noread=0, drain=0, fill=0, release=0):
    return bytes([nfds | built << 2 | noread << 3 | drain << 4 | fill << 6 |
                  release << 7])


def raw(data, nfds=0, noread=0, drain=0, release=0):
    return (ctl(nfds, 0, noread, drain, 0, release) +
            struct.pack("<H", len(data)) + data)


def fill(n, byte, nfds=0, noread=0, drain=0):
    return ctl(nfds, 0, noread, drain, 1) + struct.pack("<H", n) + bytes([byte])


def built(type_, plen, flags=0, nfds=0, peerid=1, pid=2, payload=b"",
          noread=0, drain=0, release=0):
    return (ctl(nfds, 1, noread, drain, 0, release) +
            bytes([type_, peerid, pid]) +
            struct.pack("<H", plen) + bytes([flags]) + payload)


def repeat(n, nfds=0, noread=0, drain=0, release=0):
    """The last raw or built chunk, n more times (one call per copy with
    descriptors)."""
    return ctl(nfds, 1, noread, drain, 1, release) + struct.pack("<H", n)


def reader_layout():
    """MBLOCK_SIZE, sizeof(struct ibuf_box), MSGBUF_READ_MAX and
    MSGBUF_READ_MIN, compiled from src/imsg-private.h (without a compiler,
    their values on LP64 when this was written): the seeds that aim at
    the end of the read block depend on them."""
    prog = (b'#include "imsg-private.h"\n#include <stdio.h>\n'
            b'int main(void) { printf("%zu %zu %zu %zu\\n", '
            b'(size_t)MBLOCK_SIZE, sizeof(struct ibuf_box), '
            b'(size_t)MSGBUF_READ_MAX, (size_t)MSGBUF_READ_MIN); }\n')
    top = os.path.join(here, "..")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "layout")
        try:
            subprocess.run([os.environ.get("CC", "cc"), "-I",
                            os.path.join(top, "src"), "-I",
                            os.path.join(top, "include"), "-x", "c", "-",
                            "-o", exe], input=prog, check=True,
                           capture_output=True)
            res = subprocess.run([exe], check=True, capture_output=True)
            return tuple(int(v) for v in res.stdout.split())
        except (OSError, subprocess.CalledProcessError):
            return (512 * 1024, 96, 65536, 16384)


def to_block_end(tail, fdpass=1, seed=1):
    """Hold a 24-byte imsg in place at offset 0 of the read block (so it
    cannot start over), then fill the block with 64 KiB reads of
    misaligned 4 KiB imsgs (copied out, no box on the block) until less
    than 64 KiB of room is left, then send one filler imsg so that the
    next read, which the room cuts, ends `tail` bytes into the last
    chunk.  Everything fetched is held."""
    block, box, read_max, read_min = LAYOUT
    room = block - box - 24
    k = 0
    while room - read_max >= read_min:
        room -= read_max
        k += 1
    filler = room - tail
    assert 16 <= filler <= 65535 and k > 0
    return (cfg(fdpass=fdpass, limit=7, hold=1, seed=seed) +
            built(1, 8, flags=2) +
            built(2, 4080, flags=2, noread=1) + repeat(15) +
            b"".join(repeat(16) for _ in range(k - 1)) +
            built(3, filler, flags=0x12, noread=1))


LAYOUT = reader_layout()

seeds = {
    "empty": b"",
    "config-only": cfg(),
    "one-empty-msg": cfg() + raw(msg(1)),
    "one-msg": cfg() + raw(msg(7, b"hello, world", 3, 4)),
    "three-in-one-chunk": cfg() + raw(msg(1, b"a") + msg(2, b"bc") + msg(3)),
    "split-header": cfg() + raw(msg(5, b"xyz")[:7]) + raw(msg(5, b"xyz")[7:]),
    "split-byte-by-byte": cfg() + b"".join(
        raw(bytes([b])) for b in msg(9, b"0123", 1, 2)),
    "split-payload-deferred": cfg() + raw(msg(4, b"A" * 40)[:30], noread=1) +
        raw(msg(4, b"A" * 40)[30:]),
    "bad-len-15": cfg() + raw(msg(1, b"ok") + hdr(2, 15)),
    "bad-len-0": cfg() + raw(hdr(0, 0)),
    "bad-len-max": cfg() + raw(hdr(1, 0x7fffffff)),
    "bad-len-all-ones": cfg() + raw(hdr(1, 0xffffffff)),
    "bad-len-mark-only": cfg(fdpass=1) + raw(hdr(1, MARK), nfds=1),
    "len-default-max": cfg() + built(1, 16368, flags=2),
    "len-default-max-plus1": cfg() + built(1, 16369, flags=2),
    "limit16-ok-then-bad": cfg(limit=1) + raw(msg(1) + msg(2, b"x")),
    "limit17": cfg(limit=2) + raw(msg(1, b"y") + msg(2, b"yz")),
    "limit100-split": cfg(limit=5) + built(3, 100, flags=0x22) +
        built(3, 101, flags=2),
    "limit70000": cfg(limit=7) + built(8, 70000 >> 4, flags=0x0a) +
        built(9, 70020 >> 2, flags=0x16),
    "limit70000-exact": cfg(limit=7) + built(8, 70016 >> 2, flags=0x16),
    "fd-one": cfg(fdpass=1) + built(1, 4, flags=1, nfds=1, payload=b"abcd"),
    "fd-two-on-chunk": cfg(fdpass=1) + built(1, 0, flags=1, nfds=2),
    "fd-split-msg": cfg(fdpass=1) + built(2, 300, flags=0x23, nfds=1),
    "fd-many": cfg(fdpass=1, imsg_get=1) + b"".join(
        built(i, i, flags=3, nfds=1 + (i & 1), noread=i & 1) for i in range(8)),
    "fd-no-fdpass": cfg(fdpass=0) + built(1, 2, flags=1, nfds=1, payload=b"hi"),
    "fd-marked-without-fd": cfg(fdpass=1) + built(1, 0, flags=1) +
        built(2, 0, flags=1, nfds=1),
    "fd-mid-message": cfg(fdpass=1) + raw(msg(1, b"x" * 20)[:10]) +
        raw(msg(1, b"x" * 20)[10:] + msg(2, b"", mark=True), nfds=1),
    "fd-unmarked": cfg(fdpass=1) + built(1, 8, flags=2, nfds=1),
    "fd-leave-for-clear": cfg(fdpass=1, leave=1) +
        built(1, 1, flags=3, nfds=1, noread=1) + built(2, 1, flags=3, nfds=1),
    "eof-mid-message": cfg() + raw(msg(1, b"x" * 30)[:25]),
    "eof-mid-header": cfg() + raw(msg(1) + msg(2)[:9]),
    "forward-all": cfg(fwd=1, fwd_limit=7, seed=7) + b"".join(
        built(i, 3 * i, flags=2) for i in range(12)),
    "forward-fd": cfg(fdpass=1, fwd=1, fwd_fdpass=1, fwd_limit=7, seed=3) +
        b"".join(built(i, 5, flags=3, nfds=1) for i in range(10)),
    "forward-small-limit": cfg(limit=6, fwd=1, fwd_limit=4, seed=11) +
        b"".join(built(i, 7 * i, flags=2) for i in range(10)),
    "forward-big": cfg(limit=7, fwd=1, fwd_limit=7, seed=5) +
        built(1, 60000, flags=2) + built(2, 16368, flags=2) +
        built(3, 70000 >> 2, flags=0x06),
    "ibufq": cfg(ibufq=1, seed=9) + b"".join(
        built(i, i, flags=2) for i in range(16)),
    "ibufq-fd": cfg(fdpass=1, ibufq=1, seed=13) + b"".join(
        built(i, 2, flags=3, nfds=1) for i in range(8)),
    "strings": cfg(seed=21) + raw(msg(1, b"abc\0def\0") + msg(2, b"\0") +
        msg(3, b"no nul here") + msg(4, b"x\0")),
    "many-small": cfg(seed=4) + raw(b"".join(msg(i, bytes([i])) for i in range(200))),
    "drain-one-at-a-time": cfg() + b"".join(
        built(i, i, flags=2, drain=1) for i in range(6)) + raw(b"", drain=2),
    "pipe": cfg(pipe=1, seed=5) + raw(msg(1, b"ab")[:9]) +
        raw(msg(1, b"ab")[9:] + msg(2)) + built(3, 20000, flags=2),
    "pipe-fdpass-on": cfg(pipe=1, fdpass=1) + built(1, 3, flags=1, nfds=1) +
        built(2, 0),
    "custom": cfg(custom=1, fdpass=1, limit=7, seed=8) +
        built(1, 4, flags=1, nfds=1) + built(0x10, 3000, flags=2) +
        built(0x11, 70000 >> 2, flags=0x06) + built(2, 10, flags=3, nfds=2),
    "custom-eproto": cfg(custom=1, fdpass=1) + built(1, 1) +
        built(0xe1, 0, flags=1, nfds=1) + built(2, 2),
    "custom-short": cfg(custom=1) + built(1, 1) + built(0xe2, 5),
    "custom-view": cfg(custom=1, fdpass=1) + built(0xe3, 0, flags=1, nfds=1),
    "forward-pipe": cfg(fwd=1, fwd_pipe=1, fwd_fdpass=1, fwd_limit=7,
                        seed=17) +
        b"".join(built(i, 40 * i, flags=2) for i in range(10)),
    "forward-pipe-nofdpass": cfg(fwd=1, fwd_pipe=1, fwd_limit=7, seed=19) +
        b"".join(built(i, 9000 * i, flags=2) for i in range(8)),
    # A sender whose sendmsg stopped inside the header: the descriptor
    # came with the first bytes and must wait for the rest of the header.
    "fd-cut-header": cfg(fdpass=1) +
        raw(msg(4, b"abc", mark=True)[:7], nfds=1) +
        raw(msg(4, b"abc", mark=True)[7:]),
    # 4096 zero-payload imsgs in one 64 KiB read, in place: their boxes
    # fill most of the read block.
    "tiny-4096-one-read": cfg() + built(1, 0, noread=1) + repeat(4095),
    # 16384 of them over four reads, fetched only after the last: the
    # boxes meet the stream and the rest are copied.
    "tiny-queued-4-reads": cfg(seed=3) + built(1, 0, noread=1) +
        repeat(4095, drain=2) + repeat(4096, drain=2) +
        repeat(4096, drain=2) + repeat(4096),
    # The same, every one held after it is fetched, then released in
    # pieces (order and number from the seed) between reads.
    "tiny-held-released": cfg(hold=1, seed=12) + built(1, 0, noread=1) +
        repeat(4095) + repeat(4096, release=1) + repeat(4096) +
        repeat(4096, release=1) + repeat(4096),
    # 1 KiB aligned imsgs, 64 per read, all held: the block fills (data
    # up, boxes down), is retired for a fresh one while its messages are
    # still out, and is recycled when the last of them is freed.
    "held-until-retired": cfg(hold=1, seed=5) + built(1, 1008, flags=2) +
        repeat(63) + repeat(64) + repeat(64) + repeat(64, release=1) +
        repeat(64) + repeat(64) + repeat(64) + repeat(64, release=1),
    # The same, left on the receive queue (never fetched) until the end.
    "queued-until-retired": cfg(seed=6) + built(1, 1008, flags=2, drain=2) +
        b"".join(repeat(64, drain=2) for _ in range(15)),
    # Lengths 16..49 in one chunk, most not multiples of 16, repeated:
    # in place and copied, headers and payloads cut by every read.
    "mixed-alignment": cfg(seed=8) + raw(b"".join(
        msg(i, bytes([i]) * i) for i in (0, 1, 15, 16, 17, 31, 32, 33)),
        noread=1) + repeat(2000),
    "mixed-alignment-held": cfg(hold=1, seed=9) + raw(b"".join(
        msg(i, bytes([i]) * i) for i in (0, 1, 15, 16, 17, 31, 32, 33)),
        noread=1) + repeat(300) + repeat(700, release=1) + repeat(1000),
    # In place up to 64 KiB exactly, then one byte more (copied), then
    # 64 KiB minus 1 (misaligned after it).
    "inplace-max": cfg(limit=7, hold=1, seed=2) + built(1, 65520, flags=2) +
        built(2, 65521, flags=2) + built(3, 65519, flags=2) +
        built(4, 65520, flags=2, release=1),
    # A 30000-byte imsg that begins in place and is filled over reads
    # while other messages are held.
    "inplace-being-filled": cfg(limit=7, hold=1, seed=4) + built(1, 0) +
        raw(hdr(2, 30000), noread=1) + fill(10000, 0x71) +
        fill(19984, 0x71) + built(3, 0),
    # The same with nothing held: alone in its block, the message moves
    # to the block's start before the next read; with a descriptor too.
    "inplace-moved": cfg(limit=7, seed=4) + built(1, 0, noread=1) +
        raw(hdr(2, 30000), noread=1) + fill(10000, 0x71) +
        fill(19984, 0x71) + built(3, 0),
    "inplace-moved-fd": cfg(fdpass=1, limit=7, seed=4) +
        built(1, 0, noread=1) + raw(hdr(2, 30000 | MARK), nfds=1) +
        fill(10000, 0x71) + fill(9984, 0x72) + fill(10000, 0x73),
    # Marked imsgs, each with its own descriptor (one call per copy),
    # queued until the read block is retired under them.
    "fd-repeat-queued": cfg(fdpass=1, seed=7) +
        built(1, 984, flags=3, nfds=1, drain=2) + repeat(1000, nfds=1, drain=2),
    # A descriptor on a marked imsg whose header the end of the read
    # block cuts: it waits for the rest, read into the next block.
    "fd-cut-header-at-block-end": to_block_end(7) +
        built(4, 100, flags=3, nfds=1),
    # The same with the payload cut: the imsg is copied out.
    "fd-cut-payload-at-block-end": to_block_end(16 + 50) +
        built(4, 100, flags=3, nfds=1),
    # The same with a large imsg, read straight into its own buffer.
    "fd-cut-large-at-block-end": to_block_end(16 + 50) +
        built(4, 20000, flags=3, nfds=1),
    # An unmarked small imsg cut there: left unparsed and moved along.
    "cut-small-at-block-end": to_block_end(40, fdpass=0) + built(4, 100, flags=2),
    "mixed-hostile": cfg(fdpass=1, fwd=1, seed=99) + built(1, 3, flags=1, nfds=2) +
        raw(hdr(2, 40)[:5], nfds=1) + raw(hdr(2, 40)[5:] + b"z" * 24) +
        built(3, 10, flags=0x11),
}


regress_read = {
    # Not the library: the harness ran out of descriptors (EMFILE in its
    # own open) when 40 * 1024 marked imsgs, each sent with one, stayed
    # queued.  Calls with descriptors are now capped per input (fdcap).
    "harness-emfile-queued-fds": cfg(fdpass=1) +
        built(1, 0, flags=1, nfds=1, drain=2) +
        b"".join(repeat(1024, nfds=1, drain=2) for _ in range(40)),
    # The header came in three pieces, the descriptor with the first: the
    # descriptor waited for the header only one read, then was closed.
    "fd-header-cut-three-times": cfg(fdpass=1) +
        raw(msg(4, b"abc", mark=True)[:5], nfds=1) +
        raw(msg(4, b"abc", mark=True)[5:11]) +
        raw(msg(4, b"abc", mark=True)[11:]),
}

# fuzz_ibuf: one opcode byte per call, then its arguments.
OPEN, DYNAMIC, FREE, RESERVE, ADD, ADD_ZERO, ADD_INT, STRBUF, ADD_IBUF = \
    0, 2, 4, 5, 6, 8, 9, 10, 11
SET, SET_INT, SEEK, GET_INT, GET, TRUNCATE, REWIND, SET_MAX = \
    12, 13, 14, 15, 16, 18, 19, 20
VIEW, FD, QUEUE, MSGBUF = 21, 23, 24, 25
# get_len specials
L16, LMAX, LOVF0, LOVF1, LSIZE, LSIZE1, LSIZEM1, LLEFT, LLEFT1 = \
    0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8


def ln(n):
    return bytes([n]) if n < 0xc0 else bytes([L16]) + struct.pack("<H", n)


def data(n, seed=0x41):
    """Arguments of get_bytes: a seed, then up to 32 input bytes."""
    return bytes([seed]) + bytes((seed + 3 * i) & 0xff or 1
                                 for i in range(min(n, 32)))


def o_open(n):
    return bytes([OPEN]) + ln(n)


def o_dyn(n, mode, extra=b""):
    return bytes([DYNAMIC]) + ln(n) + bytes([mode]) + extra


def o_add(slot, n, seed=0x41):
    return bytes([ADD, slot]) + ln(n) + data(n, seed)


def o_int(op, slot, width, val, pos=None):
    return (bytes([op, slot]) + (ln(pos) if pos is not None else b"") +
            bytes([width, val]))


def o_get(slot, kind, n):
    return bytes([GET, kind, slot]) + (ln(n) if isinstance(n, int) and
                                       n < 0xc0 else bytes([n]))


ibuf_seeds = {
    "open-add-get": o_open(64) + o_add(0, 24) +
        b"".join(bytes([GET_INT, 0, w]) for w in range(7)) +
        bytes([REWIND, 0]) + o_get(0, 2, 5) + o_get(0, 1, 3) +
        o_get(0, 3, 4) + o_get(0, 0, LSIZE) + o_get(0, 0, 1),
    "dynamic-grow": o_dyn(0, 5) + b"".join(o_add(0, 150, i) for i in range(6)) +
        b"".join(o_int(ADD_INT, 0, w, v) for w in range(7) for v in range(9)) +
        b"".join(o_int(SET_INT, 0, w, v, pos=w) for w in range(7)
                 for v in (0, 2, 4, 6, 8)) +
        bytes([SEEK, 0, 3, 9, SEEK, 0, LSIZE, 0, SEEK, 0, LSIZE1, 0]),
    "limits": o_dyn(10, 6, bytes([20])) + o_add(0, 15) + o_add(0, 6) +
        bytes([RESERVE, 0, LMAX, RESERVE, 0, LOVF0, RESERVE, 0, LOVF1,
               RESERVE, 0, LLEFT]) + data(5) +
        bytes([ADD_ZERO, 0, LLEFT1, TRUNCATE, 0, 30, TRUNCATE, 0, 3,
               TRUNCATE, 0, 20, SET_MAX, 0, 1, SET_MAX, 0, 3,
               SET_MAX, 0, 2, SET_MAX, 0, 0]) +
        o_dyn(100, 0) + o_dyn(100, 1) + o_dyn(0, 2) + o_open(0) +
        bytes([ADD, 1, 0]) + data(0) + bytes([RESERVE, 1, 0]) +
        bytes([STRBUF, 0, 3, 0x61, 0x62, 0x63, 0, STRBUF, 0, 3,
               0x61, 0x62, 0x63, 3, STRBUF, 0, 3, 0x61, 0x62, 0x63, 4]),
    "views": bytes([VIEW, 0, 10, 40]) + o_open(32) + o_add(1, 20) +
        bytes([VIEW, 2, 1, 8, VIEW, 1, 1]) + o_add(0, 4) +
        bytes([ADD_ZERO, 2, 0, TRUNCATE, 2, 2, TRUNCATE, 2, 50]) +
        bytes([SET, 0, 1, 2]) + data(2) + bytes([SET_MAX, 0, 0, FREE, 0]) +
        bytes([ADD_IBUF, 1, 2, ADD_IBUF, 1, 0, GET_INT, 2, 1]) +
        bytes([VIEW, 2, 2, 4, VIEW, 1, 3]),
    "fd": o_open(8) + bytes([FD, 0, 0, FD, 0, 0, FD, 2, 0, FD, 0, 0,
                             FD, 1, 0, FD, 0, 0, QUEUE, 0, 0, 0,
                             QUEUE, 0, 1, QUEUE, 0, 3]) + o_open(4) +
        bytes([FD, 0, 0, FREE, 0]),
    "queues-msgbuf": o_open(16) + o_add(0, 16) + o_dyn(8, 4) + o_add(1, 8) +
        o_open(0) + bytes([FD, 0, 1]) + bytes([GET_INT, 0, 3]) +
        bytes([QUEUE, 0, 0, 0, QUEUE, 1, 0, 1, QUEUE, 1, 0, 2,
               QUEUE, 0, 2, QUEUE, 0, 1, MSGBUF, 0, 0, MSGBUF, 1, 0,
               MSGBUF, 3]) + o_open(70) + o_add(0, 70) +
        bytes([MSGBUF, 0, 0, MSGBUF, 2]),
}

regress_ibuf = {
    # Appending a view of a buffer to that buffer, with growth: the
    # source moved (and was wiped) under ibuf_add.
    "add-ibuf-self-view": o_dyn(60, 4) + o_add(0, 60) + bytes([VIEW, 1, 0]) +
        bytes([ADD_IBUF, 0, 1]),
    # The same, with the view reaching past wpos after a truncate.
    "add-ibuf-truncated-view": o_dyn(60, 4) + o_add(0, 60) +
        bytes([VIEW, 1, 0, TRUNCATE, 0, 10, ADD_IBUF, 0, 1]),
}

if __name__ == "__main__":
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)
    for name, data_ in sorted(regress_read.items()):
        with open(os.path.join(out, "regress-" + name), "wb") as f:
            f.write(data_)
    os.makedirs(out_ibuf, exist_ok=True)
    for name, data_ in sorted(ibuf_seeds.items()):
        with open(os.path.join(out_ibuf, "seed-" + name), "wb") as f:
            f.write(data_)
    for name, data_ in sorted(regress_ibuf.items()):
        with open(os.path.join(out_ibuf, "regress-" + name), "wb") as f:
            f.write(data_)
    print(f"{len(seeds) + len(regress_read)} + "
          f"{len(ibuf_seeds) + len(regress_ibuf)} seeds",
          file=sys.stderr)
