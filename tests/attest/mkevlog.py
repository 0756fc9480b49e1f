#!/usr/bin/env python3
"""A TCG PC Client crypto-agile event log as OVMF + the Linux EFI stub write it
(sha1 and sha256 banks), for tests: PCR 0 (CRTM version, firmware blob), PCR 7
(Secure Boot variables), separators in PCRs 0-7, and PCR 9 with the EFI stub's
two EV_EVENT_TAG events (kernel command line, initrd).

  mkevlog.py --cmdline FILE --initrd FILE --out LOG [--no-pcr9] [--firmware TEXT]

Prints one "PCR SHA256HEX" line per extended event (for tpm2_pcrextend), then
"pcr0 HEX" and "pcr7 HEX" (the replayed values, the registry's references).
"""
import argparse, hashlib, struct

EV_NO_ACTION, EV_SEPARATOR, EV_EVENT_TAG, EV_S_CRTM_VERSION = 0x3, 0x4, 0x6, 0x8
EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000001, 0x80000008
SHA1, SHA256 = 0x0004, 0x000b

ap = argparse.ArgumentParser()
ap.add_argument("--cmdline", required=True)
ap.add_argument("--initrd", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--no-pcr9", action="store_true")
ap.add_argument("--firmware", default="OVMF 2022.11 (test)")
a = ap.parse_args()

def spec_id():
    algs = [(SHA1, 20), (SHA256, 32)]
    ev = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algs))
    for alg, size in algs:
        ev += struct.pack("<HH", alg, size)
    ev += b"\0"
    return struct.pack("<II", 0, EV_NO_ACTION) + b"\0" * 20 + struct.pack("<I", len(ev)) + ev

events = []   # (pcr, type, digested bytes, event data)
def add(pcr, typ, digested, data=None):
    events.append((pcr, typ, digested, digested if data is None else data))

add(0, EV_S_CRTM_VERSION, a.firmware.encode("utf-16-le") + b"\0\0")
add(0, EV_EFI_PLATFORM_FIRMWARE_BLOB, hashlib.sha256(a.firmware.encode() + b" code").digest(), struct.pack("<QQ", 0xffc00000, 0x00400000))
EFI_GLOBAL = b"\x61\xdf\xe4\x8b\xca\x93\xd2\x11\xaa\x0d\x00\xe0\x98\x03\x2b\x8c"
for var, val in (("SecureBoot", b"\0"), ("PK", b""), ("KEK", b""), ("db", b""), ("dbx", b"")):
    # UEFI_VARIABLE_DATA: GUID, name length, data length, UTF-16 name, data
    add(7, EV_EFI_VARIABLE_DRIVER_CONFIG, EFI_GLOBAL + struct.pack("<QQ", len(var), len(val)) + var.encode("utf-16-le") + val)
for p in range(8):
    add(p, EV_SEPARATOR, b"\0\0\0\0")
if not a.no_pcr9:
    cmd = open(a.cmdline, "rb").read().rstrip(b"\r\n").decode("latin-1")
    cmd_utf16 = (cmd + " initrd=initrd").encode("utf-16-le") + b"\0\0"
    # EV_EVENT_TAG: TCG_PCClientTaggedEvent {id, size, data}; the digest is of the measured buffer
    add(9, EV_EVENT_TAG, cmd_utf16, struct.pack("<II", 0x8F3B22EE, len(cmd_utf16)) + cmd_utf16)
    initrd = open(a.initrd, "rb").read()
    add(9, EV_EVENT_TAG, initrd, struct.pack("<II", 0x8F3B22ED, 12) + b"Linux initrd")

log = spec_id()
log += struct.pack("<II", 0, EV_NO_ACTION) + struct.pack("<I", 2) + struct.pack("<H", SHA1) + b"\0" * 20 + \
       struct.pack("<H", SHA256) + b"\0" * 32 + struct.pack("<I", 17) + b"StartupLocality\0" + b"\0"
pcrs = {p: b"\0" * 32 for p in range(24)}
for pcr, typ, digested, data in events:
    d1, d256 = hashlib.sha1(digested).digest(), hashlib.sha256(digested).digest()
    log += struct.pack("<III", pcr, typ, 2) + struct.pack("<H", SHA1) + d1 + struct.pack("<H", SHA256) + d256
    log += struct.pack("<I", len(data)) + data
    pcrs[pcr] = hashlib.sha256(pcrs[pcr] + d256).digest()
    print(pcr, d256.hex())
open(a.out, "wb").write(log)
print("pcr0", pcrs[0].hex())
print("pcr7", pcrs[7].hex())
