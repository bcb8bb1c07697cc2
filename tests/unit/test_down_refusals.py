"""When the engine refuses to remove a network (Docker 20.10 can say "has active endpoints"
with no container attached), `down` disconnects what it lists, retries, and at last says
exactly what is left and how to remove it."""

from __future__ import annotations

import docker.errors

from labctl.engines.compose import ComposeEngine


class StubbornNetwork:
    """A stand-in for a docker-py Network whose removal the engine refuses `refusals` times."""

    def __init__(self, refusals: int):
        self.name, self.id = "lab-x_lan", "abc123"
        self.refusals = refusals
        self.attrs = {"Containers": {"e1": {"Name": "lab-x-ghost-1"}}}
        self.removed = False

    def remove(self):
        if self.refusals:
            self.refusals -= 1
            raise docker.errors.APIError("409", explanation="error while removing network: network "
                                         "lab-x_lan id abc123 has active endpoints")
        self.removed = True

    def reload(self):
        pass


class Api:
    def __init__(self):
        self.disconnected = []

    def disconnect_container_from_network(self, container, network, force=False):
        self.disconnected.append((container, network, force))


class Client:
    def __init__(self):
        self.api = Api()


def engine() -> ComposeEngine:
    made = ComposeEngine.__new__(ComposeEngine)
    made.client = Client()
    return made


def test_a_refused_network_is_disconnected_and_retried():
    network, runner = StubbornNetwork(refusals=2), engine()
    assert runner._remove_network(network) is None and network.removed
    assert runner.client.api.disconnected[0] == ("lab-x-ghost-1", "abc123", True)


def test_a_network_that_stays_is_named_with_how_to_remove_it():
    network, runner = StubbornNetwork(refusals=99), engine()
    left = runner._remove_network(network, attempts=2)
    assert "has active endpoints" in left and "docker network rm lab-x_lan" in left
    assert not network.removed
