"""The lab's DNS: its zone (services/dnszone.py, standard library, run inside lab hosts),
the dns service's and the dns check's vocabulary, and the resolver it becomes."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from labctl.engines.factory import read_lab
from labctl.errors import LabFileError
from labctl.render.compose import dns_zone, render, resolv_conf
from labctl.render.pki import LabPki

from ..conftest import REPO

spec = importlib.util.spec_from_file_location("dnszone", REPO / "services" / "dnszone.py")
dnszone = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dnszone)

LAB = """
name: d
networks:
  lan: {subnet: 10.8.1.0/24}
  dmz: {subnet: 10.8.2.0/24}
hosts:
  gw: {networks: [lan, dmz], router: true}
  ns:
    networks: {dmz: 10.8.2.53}
    services:
      - dns:
          zone: campus.lab
          resolver: true
          records: [{name: www, type: CNAME, value: web}, {name: "@", type: MX, value: "10 web"}]
  web: {networks: {dmz: 10.8.2.80}}
  alice: {networks: {lan: 10.8.1.5}}
"""


def zone() -> object:
    return dnszone.Zone("campus.lab", {"web": ["10.8.2.80"], "ns": ["10.8.2.53"]},
                        [{"name": "www", "type": "CNAME", "value": "web"},
                         {"name": "@", "type": "TXT", "value": "hello"},
                         {"name": "_http._tcp", "type": "SRV", "value": "0 5 8080 web"}], "ns")


def ask(name: str, qtype: str = "A") -> dict:
    response, facts = zone().answer(dnszone.query(name, qtype, 4242))
    parsed = dnszone.parse_response(response)
    assert parsed["id"] == 4242 and parsed["rcode"] == facts["rcode"]
    return parsed


def test_the_zone_answers_for_hosts_their_addresses_and_declared_records():
    assert [r["value"] for r in ask("web.campus.lab")["answers"]] == ["10.8.2.80"]
    assert [r["value"] for r in ask("WWW.campus.lab.")["answers"]] == ["web.campus.lab", "10.8.2.80"]
    assert [r["value"] for r in ask("80.2.8.10.in-addr.arpa", "PTR")["answers"]] == ["web.campus.lab"]
    assert [r["value"] for r in ask("campus.lab", "TXT")["answers"]] == ["hello"]
    assert [r["value"] for r in ask("_http._tcp.campus.lab", "SRV")["answers"]] == ["0 5 8080 web.campus.lab"]
    assert ask("web.campus.lab", "AAAA") == {"id": 4242, "rcode": "NOERROR", "aa": True, "ra": False, "answers": []}
    assert ask("nobody.campus.lab")["rcode"] == "NXDOMAIN"
    assert ask("example.org")["rcode"] == "REFUSED"          # never recursion
    assert ask("1.1.1.1.in-addr.arpa", "PTR")["rcode"] == "REFUSED"


def test_a_malformed_query_gets_no_answer_and_never_an_exception():
    # An answer to what is not a query could be answered in turn: nothing is sent.
    for junk in [b"", b"\x01", b"\x00\x01" + b"\xff" * 20, dnszone.query("web.campus.lab", "A", 1)[:-3],
                 b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"]:
        response, facts = zone().answer(junk)
        assert response is None and facts["error"].startswith("not answered: malformed query"), junk


def test_a_response_is_never_answered():
    query = dnszone.query("web.campus.lab", "A", 9)
    answer, _ = zone().answer(query)
    assert zone().answer(answer) == (None, {"qname": "web.campus.lab", "qtype": "A",
                                            "error": "not answered: a response, not a query"})
    spoofed = bytearray(query)
    spoofed[2] |= 0x80   # only the QR bit: a query's shape, a response's flag
    assert zone().answer(bytes(spoofed))[0] is None
    assert zone().answer(query)[0] is not None


def test_a_name_longer_than_dns_allows_is_malformed_even_through_pointers():
    # Two labels of 63 bytes, then a pointer back to the first: without a bound on the
    # name's size the 64 jumps allowed would make a name of about 8 KB.
    label = b"\x3f" + b"a" * 63
    message = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + label + label + b"\xc0\x0c\x00\x01\x00\x01"
    with pytest.raises(dnszone.FormatError, match="a name over 255 bytes"):
        dnszone.read_name(message, 12)
    assert dnszone.read_name(dnszone.query("a" * 63 + "." + "b" * 63 + ".lab", "A", 1), 12)[0].endswith(".lab")
    assert zone().answer(message)[0] is None


def test_the_resolver_serves_every_host_and_the_service_knows_every_address(write_lab):
    topology = read_lab(write_lab(LAB)).topology
    ns, service = topology.resolver
    assert ns.name == "ns" and service.transports == ("udp", "tcp")
    assert "nameserver 10.8.2.53\nsearch campus.lab\n" in resolv_conf(topology, topology.hosts["alice"])
    zone_spec = dns_zone(topology, ns, service)
    assert zone_spec["hosts"]["web"] == ["10.8.2.80"] and zone_spec["records"][0] == \
        {"name": "www", "type": "CNAME", "value": "web"}


MIXED = """
name: mixed
networks:
  dual: {subnet: 10.8.1.0/24, subnet6: "fd00:8:1::/64"}
  dmz: {subnet: 10.8.2.0/24, subnet6: "fd00:8:2::/64"}
  six: {subnet6: "fd00:8:6::/64"}
  four: {subnet: 10.8.4.0/24}
hosts:
  gw: {networks: [dual, dmz, six, four], router: true}
  ns:
    networks: {dmz: [10.8.2.53, "fd00:8:2::53"]}
    services: [{dns: {zone: mixed.lab, resolver: true}}]
  both: {networks: {dual: [10.8.1.5, "fd00:8:1::5"]}}
  only6: {networks: {six: "fd00:8:6::5"}}
  only4: {networks: {four: 10.8.4.5}}
"""


def nameservers(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("nameserver ")]


def test_each_host_asks_the_resolver_over_the_families_it_reaches_it_by(write_lab):
    topology = read_lab(write_lab(MIXED)).topology
    servers = {name: nameservers(resolv_conf(topology, host)) for name, host in topology.hosts.items()}
    assert servers["only6"] == ["fd00:8:2::53"]               # across the router, over IPv6 alone
    assert servers["only4"] == ["10.8.2.53"]
    assert servers["both"] == ["10.8.2.53", "fd00:8:2::53"]   # IPv4 first
    assert servers["ns"] == ["10.8.2.53", "fd00:8:2::53"]
    # The rendered document mounts that very file as the IPv6-only host's resolv.conf.
    output = topology.folder / "compose" / "mixed.yaml"
    output.parent.mkdir()
    document = render(topology, "labctl-host:test", LabPki(topology.state_folder / "pki"), output)
    mounted = next(v for v in document["services"]["only6"]["volumes"] if v.endswith(":/etc/resolv.conf:ro"))
    written = (output.parent / mounted.split(":")[0]).read_text()
    assert nameservers(written) == ["fd00:8:2::53"] and "search mixed.lab\n" in written


def test_the_resolver_on_an_ipv6_only_network_serves_an_ipv6_only_host(write_lab):
    text = (MIXED.replace('networks: {dmz: [10.8.2.53, "fd00:8:2::53"]}', 'networks: {six: "fd00:8:6::53"}')
            .replace("  only4: {networks: {four: 10.8.4.5}}\n", ""))
    topology = read_lab(write_lab(text)).topology
    assert nameservers(resolv_conf(topology, topology.hosts["only6"])) == ["fd00:8:6::53"]
    assert nameservers(resolv_conf(topology, topology.hosts["both"])) == ["fd00:8:6::53"]


@pytest.mark.parametrize("change, host", [
    # No router joins the IPv4-only host's network to the IPv6-only resolver's.
    ((MIXED.replace('networks: {dmz: [10.8.2.53, "fd00:8:2::53"]}', 'networks: {six: "fd00:8:6::53"}')
      .replace("gw: {networks: [dual, dmz, six, four], router: true}", "gw: {networks: [dual, dmz, six], router: true}")),
     "only4"),
    # No router at all: the IPv6-only host shares no network with the resolver.
    (MIXED.replace("router: true", "router: false"), "both"),
])
def test_a_host_that_reaches_the_resolver_by_no_family_is_refused(write_lab, change, host):
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(change))
    message = str(caught.value)
    assert f"hosts.{host}.networks" in message and "lab.yaml" in message and "\n" not in message, message
    assert "reaches the lab's resolver (hosts.ns.services[0].dns.resolver) by neither IPv4 nor IPv6" in message


def test_a_dns_check_reads_as_a_sentence(write_lab):
    lab = read_lab(write_lab(LAB + textwrap.dedent("""
        checks:
          - {name: q, from: alice, to: ns:53, dns: {name: www.campus.lab, expect: [web.campus.lab, 10.8.2.80]}}
          - {name: n, from: alice, to: ns:53, dns: {name: x.campus.lab, type: mx, expect_rcode: nxdomain, tcp: true}}
        """)))
    question, missing = lab.checks
    assert (question.options.qtype, question.options.expect) == ("A", ["web.campus.lab", "10.8.2.80"])
    assert (missing.options.qtype, missing.options.rcode, missing.options.tcp) == ("MX", "NXDOMAIN", True)
    answered = {"error": None, "dns": {"rcode": "NOERROR", "answers": [{"value": "web.campus.lab"}]}}
    assert question.kind.problems(question, answered) == \
        ["no 10.8.2.80 among the answers (web.campus.lab)"]


@pytest.mark.parametrize("text, words", [
    ("zone: 'not a zone!'", "expected a domain such as campus.lab"),
    ("zone: campus.lab, records: [{name: www, type: A, value: 10.8.2.80}]", "A, AAAA and PTR come from the hosts"),
    ("zone: campus.lab, records: [{name: '@', type: MX, value: web}]", "a preference and a name"),
    ("zone: campus.lab, records: [{name: 'a b', type: TXT, value: x}]", "expected a name in the zone"),
    ("zone: campus.lab, port: 5353, resolver: true", "a resolver listens on port 53"),
    ("port: 53", "missing required key 'zone'"),
])
def test_bad_dns_service_vocabulary_is_a_one_line_error(write_lab, text, words):
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(LAB.replace("resolver: true", "resolver: false")
                           .replace("  web: {networks: {dmz: 10.8.2.80}}",
                                    f"  web: {{networks: {{dmz: 10.8.2.80}}, services: [{{dns: {{{text}}}}}]}}")))
    assert words in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


LONG = "x" * 64               # one byte over a label's most
SIXTY = ".".join(["y" * 60] * 4)   # 243 characters: 245 bytes as a DNS name


@pytest.mark.parametrize("text, where, words", [
    ("zone: 'a..b'", "dns.zone", "got 'a..b': it has an empty label"),
    ("zone: '.campus.lab'", "dns.zone", "got '.campus.lab': it has an empty label"),
    (f"zone: {LONG}.lab", "dns.zone", "is 64 bytes; a DNS label has at most 63"),
    (f"zone: {SIXTY}.abcdefghijk", "dns.zone", "is 257 bytes as a DNS name; a name has at most 255"),
    (f"zone: {SIXTY}", "dns.zone", "expected a zone short enough for every host's name in it: "
                                   "'hostmaster.yyyyyyyyyyyyyyyyyyyyyyyyyy..."),
    ("zone: campus.lab, records: [{name: 'a..b', type: TXT, value: x}]", "dns.records[0].name", "an empty label"),
    ("zone: campus.lab, records: [{name: '.www', type: TXT, value: x}]", "dns.records[0].name", "an empty label"),
    (f"zone: campus.lab, records: [{{name: {LONG}, type: TXT, value: x}}]", "dns.records[0].name",
     "is 64 bytes; a DNS label has at most 63"),
    (f"zone: campus.lab, records: [{{name: '{SIXTY}', type: TXT, value: x}}]", "dns.records[0].name",
     "is 256 bytes as a DNS name"),
    ("zone: campus.lab, records: [{name: www, type: CNAME, value: 'a..b'}]", "dns.records[0].value", "an empty label"),
    ("zone: campus.lab, records: [{name: www, type: CNAME, value: '.web'}]", "dns.records[0].value", "an empty label"),
    (f"zone: campus.lab, records: [{{name: www, type: CNAME, value: {LONG}}}]", "dns.records[0].value",
     "is 64 bytes; a DNS label has at most 63"),
    (f"zone: campus.lab, records: [{{name: www, type: CNAME, value: '{SIXTY}.zzzzzzzzzzzz'}}]", "dns.records[0].value",
     "is 258 bytes as a DNS name; a name has at most 255"),
    ("zone: campus.lab, records: [{name: '@', type: MX, value: '70000 web'}]", "dns.records[0].value", "70000 is over 65535"),
    ("zone: campus.lab, records: [{name: _s._tcp, type: SRV, value: '0 5 8080 a..b'}]", "dns.records[0].value",
     "an empty label"),
])
def test_what_the_dns_server_cannot_send_is_refused(write_lab, text, where, words):
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(LAB.replace("resolver: true", "resolver: false")
                           .replace("  web: {networks: {dmz: 10.8.2.80}}",
                                    f"  web: {{networks: {{dmz: 10.8.2.80}}, services: [{{dns: {{{text}}}}}]}}")))
    message = str(caught.value)
    assert words in message and f"hosts.web.services[0].{where}" in message and "lab.yaml" in message, message
    assert "\n" not in message


def test_names_at_the_limits_are_served(write_lab):
    """63-byte labels and a 255-byte name pass, and the zone answers them."""
    label = "z" * 63
    topology = read_lab(write_lab(LAB.replace(
        "  web: {networks: {dmz: 10.8.2.80}}",
        f"  web: {{networks: {{dmz: 10.8.2.80}}, services: [{{dns: {{zone: '{label}.lab.', records: "
        f"[{{name: '{label}.{label}.{'q' * 57}', type: CNAME, value: web}}]}}}}]}}"))).topology
    service = topology.hosts["web"].services[0]
    assert service.zone == f"{label}.lab"
    name = f"{label}.{label}.{'q' * 57}.{label}.lab"
    assert len(dnszone.encode_name(name)) == 255
    served = dnszone.Zone(service.zone, {"web": ["10.8.2.80"]}, [dict(zip(("name", "type", "value"), r))
                                                                  for r in service.records], "web")
    response, _ = served.answer(dnszone.query(name, "CNAME", 3))
    assert [r["value"] for r in dnszone.parse_response(response)["answers"]] == [f"web.{label}.lab"]


def test_a_lab_has_one_resolver(write_lab):
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(LAB.replace("  web: {networks: {dmz: 10.8.2.80}}",
                                       "  web: {networks: {dmz: 10.8.2.80}, services: [{dns: {zone: b.lab, resolver: true}}]}")))
    assert "hosts.ns already has the lab's resolver; a lab has one" in str(caught.value)


@pytest.mark.parametrize("check, words", [
    ("{from: alice, to: ns:53, dns: {name: web.campus.lab, type: BOGUS}}", "expected one of A, AAAA"),
    ("{from: alice, to: ns:53, dns: {name: web.campus.lab, expect_rcode: NOPE}}", "expected one of NOERROR"),
    ("{from: alice, to: ns:53, dns: {name: w, expect: 1.2.3.4, expect_rcode: NXDOMAIN}}", "an answer comes with NOERROR"),
    ("{from: alice, to: ns:53, dns: {name: w, expect_error: timeout, expect_rcode: REFUSED}}", "either an answer or an error"),
    ("{from: alice, to: ns:53, dns: {type: A}}", "missing required key 'name'"),
])
def test_bad_dns_check_vocabulary_is_a_one_line_error(write_lab, check, words):
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(LAB + f"checks:\n  - {check}\n"))
    assert words in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


@pytest.mark.parametrize("expect", ['{regex: "^10\\\\."}', "{contains: web}", "{exact: ns.forms.lab}",
                                    '[{contains: web}]', '[web, {regex: "^ns"}]', '[web, [x]]', "null"])
def test_dns_answers_are_values_and_other_forms_are_refused(write_lab, expect):
    text = f"""
        name: dnsforms
        networks: {{net: {{subnet: 10.91.0.0/24}}}}
        hosts:
          ns: {{networks: [net], services: [{{dns: {{zone: forms.lab}}}}]}}
          alice: {{networks: [net]}}
        checks:
          - {{name: q, from: alice, to: ns:53, dns: {{name: ns.forms.lab, expect: {expect}}}}}
        """
    # Answers are compared as values: the forms other kinds take (exact, contains, regex)
    # are refused at validate, in one line naming the key, never taken silently.
    with pytest.raises(LabFileError, match=r"checks\[0\]\.dns\.expect: expected answers as values") as caught:
        read_lab(write_lab(text))
    assert "\n" not in str(caught.value) and "lab.yaml:" in str(caught.value), str(caught.value)
