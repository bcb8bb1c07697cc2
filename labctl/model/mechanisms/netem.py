"""tc netem under an HTB class whose u32 filter admits only IPv4, so ARP passes untouched."""

from . import Mechanism

MECHANISM = Mechanism(
    name="netem",
    needs=("netem", "htb", "u32"),
    summary="tc netem (sch_netem works)",
    preference=0,
)
