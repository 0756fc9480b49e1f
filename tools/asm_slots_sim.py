#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""How often a live hello loses its hello_asm slot to newer hellos.

Plays hellos arriving at random (Poisson) into gw_asm's array of 1024 slots,
each held for an exponential time (the mean is the number held at once), with
the claim rule of bpf/lib/gw_maps.h: a free candidate slot, else the one whose
hello began first.  Prints, per number held at once, the share of new hellos
that took the slot of a hello still held, for two scattered slots a connection
(the layout before 2026-12-06) and for buckets of 4 and 8 (VM_ASM_WAYS).

    tools/asm_slots_sim.py [hellos per point] [held at once...]
"""
import heapq
import random
import sys

SLOTS = 1024


def evicted_share(held, ways, scattered, hellos, seed=1):
    rnd = random.Random(seed)
    slot = [None] * SLOTS          # (hello, began) of the holder
    where = {}                     # hello still held -> its slot
    ends = []                      # (end, hello)
    t, lost = 0.0, 0
    for i in range(hellos):
        t += rnd.expovariate(1.0)
        while ends and ends[0][0] <= t:
            _, h = heapq.heappop(ends)
            if h in where:
                slot[where.pop(h)] = None
        if scattered:
            a, b = rnd.randrange(SLOTS), rnd.randrange(SLOTS)
            cand = [a, a ^ 1 if b == a else b]
        else:
            first = rnd.randrange(SLOTS // ways) * ways
            cand = range(first, first + ways)
        free = [c for c in cand if slot[c] is None]
        if free:
            c = free[0]
        else:
            c = min(cand, key=lambda c: slot[c][1])
            lost += 1
            del where[slot[c][0]]
        slot[c] = (i, t)
        where[i] = c
        heapq.heappush(ends, (t + rnd.expovariate(1.0 / held), i))
    return lost / hellos


def main():
    hellos = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    points = [int(x) for x in sys.argv[2:]] or [32, 128, 256, 512]
    print("held at once  two slots  bucket of 4  bucket of 8")
    for held in points:
        print(f"{held:12d}  {evicted_share(held, 2, True, hellos):9.1e}  "
              f"{evicted_share(held, 4, False, hellos):11.1e}  {evicted_share(held, 8, False, hellos):11.1e}")


if __name__ == "__main__":
    main()
