"""For kernels without sch_netem: TBF for rate, nftables egress drops for loss, and an
NFQUEUE delayer in the sidecar for delay, jitter, duplication, reordering and corruption."""

from . import Mechanism

MECHANISM = Mechanism(
    name="fallback",
    needs=("htb", "u32", "tbf", "nft-egress", "nfqueue"),
    summary="the fallback: TBF for rate, nftables egress drops for loss, an NFQUEUE delayer",
    preference=1,
)
