#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A RST on a live connection through the gateway, as the VM's TCP judges it.

A real TLS connection (the kernel's TCP, Python's ssl) to the VIP fetches a
page over HTTP/1.1 keep-alive; the client's own sequence is read from its
outgoing segments (an AF_PACKET socket on the client's interface); then a
RST on the connection's tuple is sent from the same interface, and the
page is asked for again on the same connection:

  near   the RST's sequence 1000 past the client's: inside the VM's receive
         window, but not at its RCV.NXT.  The VM's TCP refuses it (RFC 5961:
         a challenge ACK), so the connection must go on: the second page is
         served whole.  (Before 2026-12-04 the gateway and the node dropped
         the connection on any RST near the client's sequence, while the VM
         kept it: the second request hung.)
  exact  the RST at the client's sequence, the one the VM takes: the second
         request must end in a reset (or EOF) within the deadline, not hang.
  taken  the same RST, then the client aborts its socket (SO_LINGER 0: its
         own RST at the same sequence) and nothing more is sent: the VM,
         which took the first, stays silent.  Prints the client's port; the
         caller checks that the gateway's and the node's sweeps retire the
         connection's entries.
  trail  as taken, but first 100 bytes of data at the client's sequence
         with a wrong TCP checksum: the gateway and the node see them (their
         cli_nxt moves 100 on), the VM's TCP drops them (its RCV.NXT, and so
         its last ACK, stays).  The RST at the old sequence is then the one
         the VM takes though not at cli_nxt: the gateway knows it by the
         VM's last ACK (flows.vm_ack) and tells the node (the RST verdict
         option).  The caller checks as for taken.

Prints one line; exit 0 when the case behaved so, 1 otherwise.
Lab addresses only (198.18.0.0/15, 2001:db8::/32).

  rel_rst.py --case near|exact --vip ADDR --name NAME --cafile CA
             --iface IF --dst-mac MAC --path /PAGE --sha256 HEX
"""
import argparse
import hashlib
import ipaddress
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rel_send import eth, ip, lab_addr, tcp  # noqa: E402

ETH_P_ALL = 3
PACKET_OUTGOING = 4
T_FIN, T_SYN, T_RST = 0x01, 0x02, 0x04


def get(tls, host, path, deadline):
    """One GET on the open connection; the body, or raises."""
    tls.settimeout(max(0.1, deadline - time.monotonic()))
    tls.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = tls.recv(65536)
        if not c:
            raise EOFError("closed before the headers")
        buf += c
    head, body = buf.split(b"\r\n\r\n", 1)
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if not head.startswith(b"HTTP/1.1 200") or length is None:
        raise ValueError("answer: %r" % head[:80])
    while len(body) < length:
        tls.settimeout(max(0.1, deadline - time.monotonic()))
        c = tls.recv(65536)
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(body), length))
        body += c
    return body[:length]


def client_next(sniff, lport):
    """The client's next sequence number (the furthest seq + length of its
    outgoing segments from lport) and its interface's MAC, from what the
    sniffer holds."""
    end, mac = None, None
    while True:
        try:
            f, addr = sniff.recvfrom(65536)
        except BlockingIOError:
            break
        if addr[2] != PACKET_OUTGOING or len(f) < 14:
            continue
        et = struct.unpack("!H", f[12:14])[0]
        if et == 0x0800:
            ihl = (f[14] & 0x0F) * 4
            if f[23] != 6:
                continue
            l4, tot = 14 + ihl, struct.unpack("!H", f[16:18])[0]
            plen_ip = tot - ihl
        elif et == 0x86DD:
            if f[20] != 6:
                continue
            l4, plen_ip = 14 + 40, struct.unpack("!H", f[18:20])[0]
        else:
            continue
        sport, dport, seq = struct.unpack("!HHI", f[l4:l4 + 8])
        if sport != lport:
            continue
        doff, flags = (f[l4 + 12] >> 4) * 4, f[l4 + 13]
        e = (seq + plen_ip - doff + (1 if flags & (T_SYN | T_FIN) else 0)) & 0xFFFFFFFF
        if end is None or ((e - end) & 0xFFFFFFFF) < 0x80000000:
            end = e
        mac = f[6:12]
    return end, mac


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--case", choices=("near", "exact", "taken", "trail"), required=True)
    a.add_argument("--vip", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--cafile", required=True)
    a.add_argument("--iface", required=True)
    a.add_argument("--dst-mac", required=True)
    a.add_argument("--path", required=True)
    a.add_argument("--sha256", required=True)
    a.add_argument("--deadline", type=float, default=5.0)
    o = a.parse_args()
    vip = lab_addr(o.vip)

    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniff.bind((o.iface, 0))
    sniff.setblocking(False)
    ctx = ssl.create_default_context(cafile=o.cafile)
    fam = socket.AF_INET if vip.version == 4 else socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(o.deadline)
    s.connect((str(vip), 443))
    tls = ctx.wrap_socket(s, server_hostname=o.name)
    body = get(tls, o.name, o.path, time.monotonic() + o.deadline)
    if hashlib.sha256(body).hexdigest() != o.sha256:
        print("first page: wrong digest")
        return 1
    laddr = tls.getsockname()
    time.sleep(0.3)   # the last ACKs out
    nxt, mac = client_next(sniff, laddr[1])
    if nxt is None:
        print("no outgoing segment of port %d seen on %s" % (laddr[1], o.iface))
        return 1
    seq = (nxt + 1000) & 0xFFFFFFFF if o.case == "near" else nxt
    src = ipaddress.ip_address(laddr[0])
    if o.case == "trail":
        seg = bytearray(tcp(src, vip, laddr[1], 443, nxt, 0, 0x10, payload=b"x" * 100))
        seg[16] ^= 0xFF   # the checksum wrong: the VM's TCP drops it, nothing on the path checks it
        sniff.send(eth(o.dst_mac, mac.hex(":"), ip(src, vip, 6, bytes(seg))))
        time.sleep(0.2)
    frame = eth(o.dst_mac, mac.hex(":"), ip(src, vip, 6, tcp(src, vip, laddr[1], 443, seq, 0, T_RST)))
    sniff.send(frame)
    time.sleep(0.5)   # the VM's answer (a challenge ACK, or nothing) on its way
    if o.case in ("taken", "trail"):
        s2 = socket.socket(fileno=tls.detach())
        s2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s2.close()
        print("%s RST at client seq +0 (port %d)%s, then the client's abort" %
              (o.case, laddr[1], ", 100 bytes past it seen on the path but not by the VM" if o.case == "trail" else ""))
        print("port %d" % laddr[1])
        return 0
    t0 = time.monotonic()
    try:
        body = get(tls, o.name, o.path, t0 + o.deadline)
        outcome = "served" if hashlib.sha256(body).hexdigest() == o.sha256 else "wrong digest"
    except socket.timeout:
        outcome = "hung"
    except (ConnectionError, EOFError, ssl.SSLError) as e:
        outcome = "reset (%s)" % type(e).__name__
    took = time.monotonic() - t0
    want = "served" if o.case == "near" else "reset"
    ok = outcome.startswith(want)
    print("%s RST at client seq %+d (port %d): the second request %s in %.2f s, want %s" %
          (o.case, seq - nxt if o.case == "near" else 0, laddr[1], outcome, took, want))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
