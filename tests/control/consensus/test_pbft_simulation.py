"""Safety and liveness of PBFT over many seeded hostile networks.

Each seed picks its own scenario (drop rate, partitions, reordering, duplicates, and either a
Byzantine replica, a crash-and-restart, or neither); see pbft_harness.run_seed. Safety is
checked on every committed block and every vote as it happens; liveness after the network
heals. `make test` runs 300 seeds here; run more with PBFT_SIM_SEEDS=5000, or spread over all
cores with `make sim SEEDS=10000 [JOBS=n]` (sim_seeds.py); replay one with PBFT_SIM_SEED=<n>.
"""

from __future__ import annotations

import os

import pytest
from pbft_harness import BYZANTINE_KINDS, Simulation, run_seed


def seeds() -> range:
    if "PBFT_SIM_SEED" in os.environ:
        seed = int(os.environ["PBFT_SIM_SEED"])
        return range(seed, seed + 1)
    return range(int(os.environ.get("PBFT_SIM_SEEDS", "300")))


@pytest.mark.timeout(max(300, len(seeds()) // 5))  # ~50 ms a seed on a slow core, 4x margin
def test_many_seeds_are_safe_and_live():
    failures = []
    for seed in seeds():
        try:
            run_seed(seed)
        except AssertionError as exc:
            failures.append(f"seed {seed}: {exc}")
    assert not failures, (f"{len(failures)} failing seeds (replay with PBFT_SIM_SEED=<n>):\n"
                          + "\n".join(failures[:20]))


@pytest.mark.parametrize("kind", BYZANTINE_KINDS)
def test_each_byzantine_behaviour(kind):
    for seed in range(10_000, 10_015):
        sim = run_seed(seed, byzantine=kind, drop=0.1)
        assert kind in sim.byzantine.values()


def test_seven_replicas_tolerate_two_byzantine_ones():
    for seed in range(20_000, 20_010):
        sim = Simulation(seed, n=7, drop=0.1, byzantine="conflict")
        bad = next(r for r in sim.nodes if r not in sim.byzantine and r != sim.honest[0])
        sim.byzantine[bad] = "forge"
        sim.honest.remove(bad)
        sim.run(until=sim.chaos_until + 600, done=sim.settled)
        sim.check_final()


@pytest.mark.parametrize("ed25519", [False, True])
def test_a_primary_forging_client_requests_is_refused_and_replaced(ed25519):
    """r0, primary of view 0, proposes requests it made up or altered (signed under its own
    key, with the one MAC it can compute in every authenticator entry). No honest replica
    executes one (check_final), the honest ones refused them, and the clients still finish."""
    for seed in range(60_000, 60_004 if ed25519 else 60_012):
        sim = Simulation(seed, drop=0.05, ed25519=ed25519)
        sim.byzantine["r0"] = "forge_request"
        sim.honest.remove("r0")
        sim.run(until=sim.chaos_until + 600, done=sim.settled)
        sim.check_final()
        refused = sum(sim.replicas[r].drops["bad_client_signature"]
                      + sim.replicas[r].drops["unauthenticated_request"] for r in sim.honest)
        assert refused > 0, f"seed {seed}: the forged requests never reached a replica"
        assert all(sim.replicas[r].view > 0 for r in sim.honest)


def test_crashed_replica_restarts_from_its_store_and_catches_up():
    for seed in range(30_000, 30_015):
        sim = run_seed(seed, crash=True, byzantine=None, drop=0.05)
        assert all(sim.replicas[r] is not None for r in sim.nodes)


def test_ed25519_signatures_end_to_end():
    for seed in range(40_000, 40_003):
        run_seed(seed, ed25519=True)


def test_a_long_partition_forces_state_transfer():
    sim = Simulation(50_000, requests_per_client=12, chaos_until=30.0, drop=0.0)
    victim = "r3"
    sim.cancel_partitions()
    sim.partition = [{victim}, {r for r in sim.nodes if r != victim}]
    sim.run(until=29.0)
    assert len(sim.chains[victim]) < len(sim.chains["r0"]) - sim.params.log_window
    sim.run(until=sim.chaos_until + 600, done=sim.settled)
    sim.check_final()
    assert sim.fetches[victim] > 0
    assert sim.replicas[victim].stable_checkpoint is not None


def test_mac_only_clients_with_a_client_that_splits_its_authenticators():
    """Unsigned requests; c0 garbles entries and sends requests whose entries are right for a
    random subset of replicas, beside a Byzantine replica or a crash. Safe and live."""
    for seed in range(70_000, 70_030):
        sim = run_seed(seed, mac_only=True, sloppy_client=True)
        assert sim.mac_only and sim.sloppy == "c0"


def test_a_primary_forging_mac_only_requests_is_refused_and_replaced():
    """As above with unsigned made-up requests: honest backups cannot authenticate them, hold
    their vote, and no f + 1 replicas ever vouch for the batch."""
    for seed in range(60_100, 60_110):
        sim = Simulation(seed, drop=0.05, mac_only=True)
        sim.byzantine["r0"] = "forge_request"
        sim.honest.remove("r0")
        sim.run(until=sim.chaos_until + 600, done=sim.settled)
        sim.check_final()
        held = sum(sim.replicas[r].drops["unauthenticated_request"] for r in sim.honest)
        assert held > 0, f"seed {seed}: the forged requests never reached a replica"
        assert all(sim.replicas[r].view > 0 for r in sim.honest)
