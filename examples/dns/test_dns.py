"""Grading a student's DNS server, and using the lab's own: the `lab` fixture brings
lab.yaml (beside this file) up once per session. Run: pytest examples/dns"""


def test_the_declared_checks_pass(lab):
    for check in lab.lab.checks:
        result = lab.check(check.name)
        assert result.passed, (check.name, result.reason)


def test_a_student_server_that_answers_wrongly_fails(lab):
    result = lab.probe({"from": "alice", "to": "student:53",
                        "dns": {"name": "www.exam.test", "expect": "10.241.1.99"}})
    assert not result.passed and "no 10.241.1.99 among the answers" in result.reason


def test_hosts_resolve_through_the_lab_dns_and_it_sees_each_lookup(lab):
    result = lab.exec("alice", "getent hosts web")
    assert result.exit_code == 0 and result.stdout.split()[0] == b"10.241.1.3", result
    page = lab.exec("alice", "curl -s http://www.campus.lab:8080/health")
    assert page.exit_code == 0 and page.stdout.strip() == b"ok", page
    alice = str(lab.topology.hosts["alice"].address_on("campus"))
    asked = {(entry["qname"], entry["rcode"]) for entry in lab.transcript("ns") if entry["peer"] == alice}
    assert ("web.campus.lab", "NOERROR") in asked and ("www.campus.lab", "NOERROR") in asked, asked
