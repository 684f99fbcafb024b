"""The egress guard with a scripted resolver: refused address classes, every spelling of them,
the allow-list grammar, and production's https-on-443 rule."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from rules.addresses import parse_network, shown
from rules.egress import EgressGuard, EgressRefused, VettedTarget
from rules.egress_lists import TenantEgress, parse_entry
from tests.utils.egress import REFUSED, ScriptedResolver, make_guard, resolving_name, table_resolver

TENANT = "00000000-0000-0000-0000-000000000001"
IDS = [host for host, _, _ in REFUSED]


async def _refusal(guard: EgressGuard, url: str) -> str:
    with pytest.raises(EgressRefused) as refused:
        await guard.vet(url, tenant_id=TENANT)
    return refused.value.reason


@pytest.mark.parametrize(("host", "reason", "answer"), REFUSED, ids=IDS)
async def test_an_internal_address_is_refused_naming_its_class(
    host: str, reason: str, answer: str
) -> None:
    resolver = table_resolver()
    assert reason in await _refusal(make_guard(resolver), f"http://{host}:8080/cb")
    assert resolver.lookups == []  # an address is never looked up


@pytest.mark.parametrize(("host", "reason", "answer"), REFUSED, ids=IDS)
async def test_a_name_resolving_to_an_internal_address_is_refused_naming_its_class(
    host: str, reason: str, answer: str
) -> None:
    index = IDS.index(host)
    name = resolving_name(index)
    refusal = await _refusal(make_guard(table_resolver()), f"https://{name}/cb")
    assert refusal.startswith(f"host {name} resolves to ")
    assert reason.split(" address ")[0] in refusal
    assert shown(ip_address(answer)) in refusal


async def test_one_internal_answer_among_public_ones_refuses_the_name() -> None:
    resolver = ScriptedResolver({"mixed.egress.test": [["93.184.216.34", "10.1.2.3"]]})
    refusal = await _refusal(make_guard(resolver), "https://mixed.egress.test/cb")
    assert "private address 10.1.2.3" in refusal


async def test_an_allowed_network_lets_its_addresses_through_and_no_others() -> None:
    resolver = ScriptedResolver(
        {"db.egress.test": [["10.20.1.5"]], "x.egress.test": [["10.9.0.1"]]}
    )
    guard = make_guard(resolver, networks=["10.20.0.0/16"])
    vetted = await guard.vet("http://db.egress.test:8080/cb", tenant_id=TENANT)
    assert vetted.address == ip_address("10.20.1.5")
    assert "private address 10.9.0.1" in await _refusal(guard, "http://x.egress.test/cb")


async def test_an_ipv4_mapped_address_is_allowed_by_its_ipv4_network_and_dialled_as_ipv4() -> None:
    guard = make_guard(ScriptedResolver(), networks=["127.0.0.0/8"], hosts=["::ffff:7f00:1"])
    vetted = await guard.vet("http://[::ffff:127.0.0.1]:9000/cb", tenant_id=TENANT)
    assert vetted.address == ip_address("127.0.0.1")
    assert vetted.request_url == "http://127.0.0.1:9000/cb"


async def test_the_vetted_target_keeps_the_name_for_host_and_tls_and_dials_the_address() -> None:
    resolver = ScriptedResolver({"api.egress.test": [["93.184.216.34"]]})
    vetted = await make_guard(resolver).vet("https://API.egress.test./hook?x=1", tenant_id=TENANT)
    assert vetted == VettedTarget(
        url="https://API.egress.test./hook?x=1",
        address=ip_address("93.184.216.34"),
        request_url="https://93.184.216.34/hook?x=1",
        host_header="api.egress.test",
        sni_hostname="api.egress.test",
    )
    v6 = ScriptedResolver({"v6.egress.test": [["2606:4700::6810:84e5"]]})
    vetted = await make_guard(v6).vet("http://v6.egress.test:8080/", tenant_id=TENANT)
    assert (vetted.request_url, vetted.host_header, vetted.sni_hostname) == (
        "http://[2606:4700::6810:84e5]:8080/",
        "v6.egress.test:8080",
        None,
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://16843009/cb", "write the address as 1.1.1.1"),  # public, but spelled oddly
        ("http://1.2.3.09/cb", "ends in a number but is not an IPv4 address"),
        ("http://foo.1/cb", "ends in a number but is not an IPv4 address"),
        ("http://[fe80::1%25eth0]/cb", "zone identifiers"),
        ("http://127.0.0.1:99999/cb", "is not a valid URL (Port out of range"),
        ("http://127.0.0.1:abc/cb", "is not a valid URL"),
        ("http://[::1/cb", "is not a valid URL"),
        ("ftp://127.0.0.1/cb", "only http and https"),
        ("http:///cb", "must name a host"),
        ("http://u:p@api.egress.test/cb", "credentials"),
        ("http://api.egress.test\\@evil.example/cb", "credentials"),
        ("http://api.egress.test/a b", "whitespace"),
        ("http://bücher.egress.test/", "ASCII"),
        ("http://evil.example/cb", "host evil.example is not on the egress allow-list"),
        ("http://egress.test/cb", "not on the egress allow-list"),  # `*.` needs a subdomain
        ("http://api.egress.test.evil.example/cb", "not on the egress allow-list"),
        ("https://nxdomain.egress.test/cb", "does not resolve"),
    ],
)
async def test_a_url_that_cannot_be_called_safely_is_refused(url: str, reason: str) -> None:
    resolver = ScriptedResolver({"api.egress.test": [["93.184.216.34"]]})
    assert reason in await _refusal(make_guard(resolver), url)


async def test_a_dns_failure_is_transient_and_a_refused_address_is_not() -> None:
    resolver = ScriptedResolver({"lo.egress.test": [["127.0.0.1"]]})
    guard = make_guard(resolver)
    with pytest.raises(EgressRefused) as dns:
        await guard.vet("https://gone.egress.test/cb", tenant_id=TENANT)
    with pytest.raises(EgressRefused) as loopback:
        await guard.vet("https://lo.egress.test/cb", tenant_id=TENANT)
    assert (dns.value.transient, loopback.value.transient) == (True, False)


PUBLIC = ScriptedResolver(
    {
        name: [["93.184.216.34"]]
        for name in ("api.egress.test", "hooks.slack.com", "events.pagerduty.com", "x.example")
    }
)


@pytest.mark.parametrize(
    ("url", "hosts", "refusal"),
    [
        ("https://api.egress.test/cb", [], None),
        ("https://api.egress.test:443/cb", [], None),
        ("http://api.egress.test/cb", [], "plain http to api.egress.test is not allowed"),
        ("http://api.egress.test/cb", ["http://api.egress.test"], None),
        ("http://api.egress.test:8080/cb", ["http://api.egress.test"], "port 8080"),
        ("http://api.egress.test:8080/cb", ["http://api.egress.test:8080"], None),
        ("https://api.egress.test:8443/cb", [], "port 8443 of api.egress.test is not"),
        ("https://api.egress.test:8443/cb", ["api.egress.test:8443"], None),
        ("https://api.egress.test/cb", ["api.egress.test:8443"], None),  # `*.egress.test`
        ("https://hooks.slack.com/services/T/B/x", [], None),  # built in
        ("https://events.pagerduty.com/v2/enqueue", [], None),
        ("http://hooks.slack.com/services/T/B/x", [], "plain http"),
        ("https://x.example/cb", [], "not on the egress allow-list"),
    ],
)
async def test_production_calls_https_on_443_unless_an_entry_says_otherwise(
    url: str, hosts: list[str], refusal: str | None
) -> None:
    guard = make_guard(PUBLIC, hosts=hosts, strict=True)
    if refusal is None:
        assert (await guard.vet(url, tenant_id=TENANT)).address == ip_address("93.184.216.34")
    else:
        assert refusal in await _refusal(guard, url)


class OneTenant:
    """Tenant lists where only TENANT has entries."""

    def __init__(self, lists: TenantEgress) -> None:
        self.lists = lists

    async def get(self, tenant_id: str) -> TenantEgress:
        return self.lists if tenant_id == TENANT else TenantEgress()


async def test_a_tenant_entry_and_network_apply_to_that_tenant_only() -> None:
    resolver = ScriptedResolver({"svc.partner.example": [["10.20.1.5"]]})
    own = TenantEgress((parse_entry("svc.partner.example"),), (parse_network("10.20.0.0/16"),))
    guard = make_guard(resolver, tenant_lists=OneTenant(own))
    vetted = await guard.vet("https://svc.partner.example/cb", tenant_id=TENANT)
    assert vetted.address == ip_address("10.20.1.5")
    other = "00000000-0000-0000-0000-000000000002"
    with pytest.raises(EgressRefused, match="not on the egress allow-list"):
        await guard.vet("https://svc.partner.example/cb", tenant_id=other)


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ("Hooks.Example.com", "hooks.example.com"),
        ("*.example.com", "*.example.com"),
        ("api.example.com:8443", "api.example.com:8443"),
        ("http://legacy.example.com", "http://legacy.example.com"),
        ("http://*.example.com:8080", "http://*.example.com:8080"),
        ("10.1.2.3:9000", "10.1.2.3:9000"),
        ("[::1]:9000", "[::1]:9000"),
        ("::1", "[::1]"),
    ],
)
def test_allow_list_entries_read_back_as_written(entry: str, shown: str) -> None:
    assert str(parse_entry(entry)) == shown


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "*.com",
        "api.*.example.com",
        "ex*ample.com",
        "https://api.example.com",
        "api.example.com/path",
        "user@api.example.com",
        "api.example.com:0",
        "api.example.com:65536",
        "api.example.com:https",
        "2130706433",
        "0177.0.0.1",
        "*.10.0.0.1",
        "[::1",
        "bücher.example",
        "",
    ],
)
def test_an_entry_outside_the_grammar_is_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_entry(entry)
