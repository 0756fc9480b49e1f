#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bad inputs for tests/reliability.sh's drop-counter table, one kind at a time.

Raw frames (AF_PACKET, from the namespace the caller runs us in):
  ack         pure ACK, random (bad) cookie                 gw bad_cookie
  ackdata     ACK with data, random (bad) cookie            gw asm_handed
  rst         RST for no flow                               gw rst_no_flow
  doff4       TCP data offset 4 (< 5)                       gw malformed
  syndata     SYN carrying payload                          gw malformed
  frag        IPv4 fragment (MF set)                        gw fragment
  ipopt       IPv4 header with options                      gw ip_options
  v6hbh       IPv6 with a hop-by-hop extension header       gw ip_options
  gnv-noconn  Geneve, no handoff, for no connection         node no_conn
  gnv-novm    Geneve with a handoff for a VM id not there   node handoff_no_vm
  gnv-badopt  Geneve whose option overruns the options      node mesh_malformed
  gnv-noflow  Geneve from a node for no gateway flow        gw ret_no_flow
Through the kernel's TCP (a real handshake with the gateway's cookie):
  hello-nosni     ClientHello without server_name           gw no_sni
  hello-name      ClientHello for --name                    gw bad_name / no_route
  nottls          an HTTP request instead of a ClientHello  gw parse_error

Addresses: --src/--dst are the inner (TCP) ends; Geneve kinds also take
--osrc/--odst (underlay). Lab addresses only (198.18.0.0/15, 2001:db8::/32).

  rel_send.py table --ns-prefix vml-ID --veilctl BIN --pin PIN < rows
runs a drop-counter table (one interpreter for every row: starting Python
takes seconds on a loaded machine). Each row:
  LABEL WHERE COUNTERS NS COMMAND...
WHERE is gw, n1 or n2 (PIN/WHERE); COUNTERS is name=N or name>=N, comma
separated; COMMAND runs in namespace NS-prefix-NS: "send KIND ARGS" for one
of the kinds above, anything else as a program. One PASS/FAIL line per row.
"""
import argparse
import contextlib
import ctypes
import io
import ipaddress
import json
import os
import random
import re
import shlex
import socket
import struct
import subprocess
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def lab_addr(a):
    ip = ipaddress.ip_address(a)
    ok = ip in ipaddress.ip_network("198.18.0.0/15") or ip in ipaddress.ip_network("2001:db8::/32")
    if not ok:
        sys.exit("rel_send: %s is not a lab address" % a)
    return ip


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", doff=5, opts=b""):
    hl = 20 + len(opts)
    off = (doff if doff != 5 else hl // 4) << 4
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off, flags, 502, 0, 0) + opts
    seg = h + payload
    if src.version == 4:
        ph = src.packed + dst.packed + struct.pack("!BBH", 0, 6, len(seg))
    else:
        ph = src.packed + dst.packed + struct.pack("!IxxxB", len(seg), 6)
    c = csum(ph + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ip4(src, dst, proto, body, frag=0, opts=b""):
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(body), random.getrandbits(16), frag, 64, proto, 0,
                    src.packed, dst.packed) + opts
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + body


def ip6(src, dst, nh, body):
    return struct.pack("!IHBB", 6 << 28, len(body), nh, 64) + src.packed + dst.packed + body


def ip(src, dst, proto, body):
    return ip4(src, dst, proto, body) if src.version == 4 else ip6(src, dst, proto, body)


def eth(dst_mac, src_mac, l3):
    et = 0x0800 if l3[0] >> 4 == 4 else 0x86DD
    return bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + struct.pack("!H", et) + l3


def geneve(osrc, odst, inner, opts=b"", optwords=None):
    words = len(opts) // 4 if optwords is None else optwords
    proto = 0x0800 if inner[0] >> 4 == 4 else 0x86DD
    g = struct.pack("!BBH3sB", words & 0x3F, 0, proto, b"\0\0\0", 0) + opts + inner
    u = struct.pack("!HHHH", random.randint(49152, 65535), 6081, 8 + len(g), 0) + g
    if osrc.version == 6:   # UDP over IPv6 needs its checksum
        ph = osrc.packed + odst.packed + struct.pack("!IxxxB", len(u), 17)
        u = u[:6] + struct.pack("!H", csum(ph + u) or 0xFFFF) + u[8:]
    return ip(osrc, odst, 17, u)


def hello(name):
    exts = b""
    if name is not None:
        n = name.encode()
        entry = b"\0" + struct.pack("!H", len(n)) + n
        lst = struct.pack("!H", len(entry)) + entry
        exts += struct.pack("!HH", 0, len(lst)) + lst
    exts += struct.pack("!HHB", 43, 3, 2) + b"\x03\x04"   # supported_versions: TLS 1.3
    body = b"\x03\x03" + os.urandom(32) + b"\0" + struct.pack("!H", 2) + b"\x13\x01" + b"\x01\x00" + \
        struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def by_socket(a, payload):
    dst = lab_addr(a.dst)
    fam = socket.AF_INET if dst.version == 4 else socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((str(dst), a.port))
    s.sendall(payload)
    try:
        got = s.recv(4096)   # the refusal (alert) or nothing
    except OSError:
        got = b""
    s.close()
    return got


def enter_netns(name):
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000):   # CLONE_NEWNET
        sys.exit("rel_send: setns %s: %s" % (name, os.strerror(ctypes.get_errno())))
    os.close(fd)


def table(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns-prefix", required=True)
    ap.add_argument("--veilctl", required=True)
    ap.add_argument("--pin", required=True)
    a = ap.parse_args(argv)
    stats = lambda where: json.loads(subprocess.run([a.veilctl, "-p", a.pin + "/" + where, "-j", "stats"],
                                                    capture_output=True, text=True).stdout)
    for row in sys.stdin:
        if not row.strip():
            continue
        label, where, counters, ns, cmd = row.split(None, 4)
        t = "drop_" + label
        enter_netns(a.ns_prefix + "-" + ns)
        before = stats(where)
        words = shlex.split(cmd)
        if words[0] == "send":
            buf = io.StringIO()
            try:
                with contextlib.redirect_stdout(buf):
                    send(words[1:])
                rc = 0
            except (OSError, SystemExit) as e:
                buf.write("error: %s\n" % e)
                rc = 1
            r = subprocess.CompletedProcess(words, rc, buf.getvalue(), "")
        else:
            r = subprocess.run(words, capture_output=True, text=True)
        time.sleep(0.3)
        after = stats(where)
        bad = []
        for c in counters.split(","):
            name, op, n = re.match(r"([a-z0-9_]+)(>=|=)(\d+)$", c).groups()
            if name not in after:
                bad.append("no counter named %s" % name)
                continue
            d = after[name] - before.get(name, 0)
            if (op == "=" and d != int(n)) or (op == ">=" and d < int(n)):
                bad.append("%s moved %d, expected %s%s" % (name, d, op, n))
        moved = " ".join("%s +%d" % (k, after[k] - before.get(k, 0)) for k in after if after[k] != before.get(k, 0))
        if bad:
            out = (r.stdout + r.stderr).strip().splitlines()
            print("FAIL %s: %s (all that moved on %s: %s; sender: %s)" % (t, "; ".join(bad), where, moved,
                                                                            out[-1] if out else "rc %d" % r.returncode))
        else:
            print("PASS %s (%s %s)" % (t, where, counters))
        sys.stdout.flush()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "table":
        return table(sys.argv[2:])
    send(sys.argv[1:])


def send(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind")
    ap.add_argument("--iface")
    ap.add_argument("--dst-mac")
    ap.add_argument("--src")
    ap.add_argument("--dst", required=True)
    ap.add_argument("--osrc")
    ap.add_argument("--odst")
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--name")
    a = ap.parse_args(argv)
    k = a.kind

    if k in ("hello-nosni", "hello-name", "nottls"):
        for _ in range(a.count):
            p = hello(None) if k == "hello-nosni" else hello(a.name) if k == "hello-name" else \
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            got = by_socket(a, p)
            print("rel_send: %s answered %s" % (k, got[:7].hex() or "nothing"))
        return

    src, dst = lab_addr(a.src), lab_addr(a.dst)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    smac = s.getsockname()[4].hex(":")   # the interface's MAC (sysfs is the caller's namespace's)
    ACK, RST, SYN, PSH = 0x10, 0x04, 0x02, 0x08
    for _ in range(a.count):
        sp, seq, ack = random.randint(1024, 65000), random.getrandbits(32), random.getrandbits(32)
        if k == "ack":
            l3 = ip(src, dst, 6, tcp(src, dst, sp, a.port, seq, ack, ACK))
        elif k == "ackdata":
            l3 = ip(src, dst, 6, tcp(src, dst, sp, a.port, seq, ack, ACK | PSH, os.urandom(300)))
        elif k == "rst":
            l3 = ip(src, dst, 6, tcp(src, dst, sp, a.port, seq, ack, RST | ACK))
        elif k == "doff4":
            l3 = ip(src, dst, 6, tcp(src, dst, sp, a.port, seq, ack, ACK, doff=4))
        elif k == "syndata":
            l3 = ip(src, dst, 6, tcp(src, dst, sp, a.port, seq, 0, SYN, b"early data"))
        elif k == "frag":
            l3 = ip4(src, dst, 6, tcp(src, dst, sp, a.port, seq, 0, SYN), frag=0x2000)
        elif k == "ipopt":
            l3 = ip4(src, dst, 6, tcp(src, dst, sp, a.port, seq, 0, SYN), opts=b"\x01\x01\x01\x00")
        elif k == "v6hbh":
            hbh = struct.pack("!BB", 6, 0) + b"\x01\x04\0\0\0\0"   # next: TCP; PadN
            l3 = ip6(src, dst, 0, hbh + tcp(src, dst, sp, a.port, seq, 0, SYN))
        elif k.startswith("gnv-"):
            osrc, odst = lab_addr(a.osrc), lab_addr(a.odst)
            if k == "gnv-noflow":   # VM -> client direction: source is the VIP
                inner = ip(src, dst, 6, tcp(src, dst, a.port, sp, seq, ack, ACK))
            else:
                inner = ip(src, dst, 6, tcp(src, dst, sp, a.port, seq, ack, ACK | PSH, hello("vm1.veil.test")))
            if k == "gnv-novm":
                ho = struct.pack("!IIIIHBBB3x", 99, seq - 1, ack - 1, 0, 1460, 7, 7, 3)
                l3 = geneve(osrc, odst, inner, struct.pack("!HBB", 0xFFF0, 1, len(ho) // 4) + ho)
            elif k == "gnv-badopt":   # one option word announced, its length says six
                l3 = geneve(osrc, odst, inner, struct.pack("!HBB", 0xFFF0, 1, 6), optwords=1)
            else:
                l3 = geneve(osrc, odst, inner)
        else:
            sys.exit("rel_send: unknown kind %s" % k)
        s.send(eth(a.dst_mac, smac, l3))
        time.sleep(0.002)
    s.close()
    print("rel_send: %s x%d" % (k, a.count))


if __name__ == "__main__":
    main()
