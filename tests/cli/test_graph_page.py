"""The interactive page of ``policyctl graph -o html`` in a headless Chromium: what it shows after
its script ran, asserted from the page itself (nodes drawn, search results, the explanation an
edge click shows) and with no console error, never from a screenshot."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyctl.cli.flowexplain import explain_edges
from policyctl.cli.flowgraph import build_flow_graph
from policyctl.cli.inputs import load_cluster
from policyctl.cli.main import main
from policyctl.policy.model import Family
from tests.cli.browser import BINARY, Chromium
from tests.cli.conftest import WEBSHOP

pytestmark = pytest.mark.skipif(BINARY is None, reason="chromium is not installed (Debian package chromium)")

SHOP = str(WEBSHOP)
WORKLOADS = {
    "ingress-nginx/deploy/ingress-nginx-controller", "kube-system/deploy/coredns", "monitoring/ds/node-exporter",
    "shop/deploy/cart", "shop/deploy/checkout", "shop/deploy/frontend", "shop/deploy/payments",
    "shop/sts/postgres", "shop/sts/redis",
}  # fmt: skip


def _policyctl(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def webshop_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("page") / "webshop.html"
    path.write_text(_policyctl("graph", "-f", SHOP, "-o", "html"), encoding="utf-8")
    return path


@pytest.fixture
def shop(browser: Chromium, webshop_page: Path) -> Iterator[Chromium]:
    """The webshop page freshly loaded; no console error may be left when the test ends."""
    browser.errors.clear()
    browser.requests.clear()
    browser.open(webshop_page)
    yield browser
    assert browser.errors == []


def _node_of(browser: Chromium, member: str) -> str:
    """The id of the node whose members include ``member``, from the data the page embeds."""
    document = json.loads(browser.evaluate("document.getElementById('flow-data').textContent"))
    return next(n["id"] for n in document["nodes"] if member in n["members"])


def _page_point(browser: Chromium, expression: str) -> tuple[float, float]:
    """Page coordinates of a rendered position inside the graph's container."""
    point = browser.evaluate(
        f"(() => {{ const r = document.getElementById('cy').getBoundingClientRect(); const p = {expression};"
        " return [r.left + p.x, r.top + p.y]; })()"
    )
    return float(point[0]), float(point[1])


def test_every_workload_is_drawn_inside_the_view(shop: Chromium) -> None:
    drawn = shop.evaluate(
        "(() => { const cy = flowView.cy; const e = cy.extent();"
        " return cy.nodes(\"[kind = 'workload']\").filter(n => n.visible() && n.renderedBoundingBox().w > 20"
        "   && n.position().x > e.x1 && n.position().x < e.x2 && n.position().y > e.y1 && n.position().y < e.y2)"
        "   .map(n => n.data('label')); })()"
    )
    document = json.loads(shop.evaluate("document.getElementById('flow-data').textContent"))
    assert shop.evaluate("flowView.rendered") == len(drawn) == len(WORKLOADS)
    assert {m for n in document["nodes"] for m in n["members"]} == WORKLOADS
    assert sorted(drawn) == sorted(n["label"] for n in document["nodes"])
    assert shop.evaluate("document.getElementById('status').textContent") == (
        "9 workload nodes in 4 namespaces, 23 allowed flows (any port, IPv4)"
    )
    assert shop.evaluate("flowView.cy.nodes(\"[kind = 'namespace']\").map(n => n.data('label'))") == [
        "ingress-nginx", "kube-system", "monitoring", "shop",
    ]  # fmt: skip


def test_the_page_fetches_nothing_but_itself(shop: Chromium, webshop_page: Path) -> None:
    shop.evaluate("flowView.selectEdge(flowView.cy.edges()[0].id(), false).then(() => 0)")
    shop.wait_for("document.getElementById('explain')?.textContent.startsWith('$ policyctl explain')")
    assert [url for url in shop.requests if not url.startswith(("data:", "blob:"))] == [webshop_page.resolve().as_uri()]


@pytest.mark.parametrize(
    ("typed", "listed"),
    [
        pytest.param("checkout", ["shop/deploy/checkout"], id="workload-name"),
        pytest.param("STS/", ["shop/sts/postgres", "shop/sts/redis"], id="kind-any-case"),
        pytest.param("kube-system", ["kube-system/deploy/coredns"], id="namespace"),
        pytest.param("no-such-thing", [], id="nothing"),
    ],
)
def test_search_lists_and_marks_the_matching_workloads(shop: Chromium, typed: str, listed: list[str]) -> None:
    shop.type("#search", typed)
    shown = shop.evaluate("[...document.querySelectorAll('#results li')].map(li => li.textContent)")
    assert shown == listed
    assert shop.evaluate("document.getElementById('found').textContent") == f"{len(listed)} found"
    assert shop.evaluate("flowView.cy.nodes('.match').length") == len(listed)


def test_enter_in_the_search_selects_the_first_match(shop: Chromium) -> None:
    shop.type("#search", "frontend")
    shop.send("Input.dispatchKeyEvent", type="keyDown", key="Enter", code="Enter", windowsVirtualKeyCode=13)
    shop.send("Input.dispatchKeyEvent", type="keyUp", key="Enter", code="Enter", windowsVirtualKeyCode=13)
    assert shop.wait_for("document.querySelector('#details h2')?.textContent") == "shop/deploy/frontend"


def test_clicking_a_workload_lists_its_flows(shop: Chromium) -> None:
    node = _node_of(shop, "shop/deploy/checkout")
    shop.click(*_page_point(shop, f"flowView.cy.getElementById('{node}').renderedPosition()"))
    assert shop.wait_for("document.querySelector('#details h2')?.textContent") == "shop/deploy/checkout"
    headings = shop.evaluate("[...document.querySelectorAll('#details h3')].map(h => h.textContent)")
    assert headings == ["may connect to (4)", "may be reached from (1)"]
    flows = shop.evaluate("[...document.querySelectorAll('#details ul.flows li')].map(li => li.textContent)")
    assert flows == [
        "kube-system/deploy/coredns: TCP 53, UDP 53", "shop/deploy/cart: TCP 8080", "shop/deploy/payments: TCP 8443",
        "shop/sts/postgres: TCP 5432", "shop/deploy/frontend: TCP 8080",
    ]  # fmt: skip


def test_clicking_an_edge_shows_its_policyctl_explain(shop: Chromium) -> None:
    source, target = _node_of(shop, "shop/deploy/frontend"), _node_of(shop, "shop/deploy/cart")
    edge = shop.evaluate(f"flowView.cy.edges(\"[source = '{source}'][target = '{target}']\").map(e => e.id())")[0]
    shop.evaluate(f"void flowView.cy.fit(flowView.cy.getElementById('{edge}').connectedNodes(), 150)")
    heading = "shop/deploy/frontend → shop/deploy/cart"
    for share in (0.5, 0.3, 0.7, 0.2, 0.8):  # a point of the edge that no node or other edge covers
        point = (f"(e => {{ const a = e.renderedSourceEndpoint(), b = e.renderedTargetEndpoint();"
                 f" return {{x: a.x + {share} * (b.x - a.x), y: a.y + {share} * (b.y - a.y)}}; }})"
                 f"(flowView.cy.getElementById('{edge}'))")  # fmt: skip
        shop.click(*_page_point(shop, point))
        if shop.evaluate("document.querySelector('#details h2')?.textContent") == heading:
            break
    assert shop.evaluate("document.querySelector('#details h2')?.textContent") == heading
    shown = shop.wait_for("(t => t && t !== 'explaining…' && t)(document.getElementById('explain')?.textContent)")
    cluster = load_cluster((SHOP,), namespace="default")
    graph = build_flow_graph(cluster, family=Family.IPV4, port=None)
    assert shown == dict(explain_edges(cluster, graph))[edge]
    assert shown.startswith("$ policyctl explain shop/frontend shop/cart --port 8080/TCP --family IPv4\n")
    assert "verdict: ALLOWED" in shown and "policy shop/cart-ingress" in shown


def test_clicking_the_background_clears_the_selection(shop: Chromium) -> None:
    shop.evaluate("flowView.selectNode(flowView.cy.nodes(\"[kind = 'workload']\")[0].id(), false)")
    assert shop.evaluate("flowView.cy.elements('.faded').length") > 0
    shop.click(*_page_point(shop, "({x: 3, y: 3})"))
    assert shop.wait_for("flowView.cy.elements('.faded').length === 0")
    assert shop.evaluate("flowView.cy.elements(':selected').length") == 0


def test_a_hundred_namespaces_open_quickly_and_stay_searchable(browser: Chromium, tmp_path: Path) -> None:
    """``gen`` with 100 namespaces: the page (with every explanation) is a few MB, opens in
    seconds, draws every node and finds a workload in any namespace."""
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(_policyctl("gen", "--namespaces", "100", "--pods", "2000", "--policies", "400"))
    page = tmp_path / "flows.html"
    page.write_text(_policyctl("graph", "-f", str(manifests), "-o", "html", "-q"), encoding="utf-8")
    document = json.loads(_policyctl("graph", "-f", str(manifests), "-o", "json"))
    assert len(document["namespaces"]) == 100
    assert page.stat().st_size < 8_000_000
    browser.errors.clear()
    started = time.monotonic()
    browser.open(page)
    assert time.monotonic() - started < 30  # about 1 s on a quiet machine; CI's may be busy
    assert browser.evaluate("flowView.rendered") == len(document["nodes"])
    last = document["nodes"][-1]
    browser.type("#search", last["members"][0])
    assert browser.evaluate("document.querySelectorAll('#results li[data-node]').length") >= 1
    assert browser.evaluate("flowView.cy.getElementById(" + json.dumps(last["id"]) + ").hasClass('match')")
    edge = document["edges"][-1]["id"]
    browser.evaluate(f"flowView.selectEdge('{edge}', true)")
    assert browser.wait_for("document.getElementById('explain')?.textContent.startsWith('$ policyctl explain')")
    assert browser.errors == []


def test_a_large_graph_draws_the_selections_flows_until_asked_for_all(browser: Chromium, tmp_path: Path) -> None:
    """100 namespaces and 4,000 pods, about 2,000 edges: they are drawn only for the selection,
    or all with the ``all flows`` box."""
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(_policyctl("gen", "--namespaces", "100", "--pods", "4000", "--policies", "600"))
    page = tmp_path / "flows.html"
    page.write_text(_policyctl("graph", "-f", str(manifests), "-o", "html", "-q", "--no-explain"), encoding="utf-8")
    document = json.loads(page.read_text().split('id="flow-data">', 1)[1].split("</script>", 1)[0])
    assert len(document["namespaces"]) == 100 and len(document["edges"]) > 1000
    browser.errors.clear()
    browser.open(page)
    visible = "flowView.cy.edges().filter(e => e.visible()).length"
    assert browser.evaluate("flowView.large") is True
    assert browser.evaluate("flowView.rendered") == len(document["nodes"])
    assert browser.evaluate(visible) == 0
    assert browser.evaluate("document.getElementById('status').textContent").endswith("; drawn: the selection's")
    busiest = max(
        document["nodes"], key=lambda n: sum(n["id"] in (e["source"], e["target"]) for e in document["edges"])
    )
    degree = sum(busiest["id"] in (e["source"], e["target"]) for e in document["edges"])
    browser.evaluate(f"flowView.selectNode({json.dumps(busiest['id'])}, true)")
    assert browser.evaluate(visible) == degree
    assert browser.evaluate("document.querySelectorAll('#details ul.flows li').length") == degree
    browser.send("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape", windowsVirtualKeyCode=27)
    browser.send("Input.dispatchKeyEvent", type="keyUp", key="Escape", code="Escape", windowsVirtualKeyCode=27)
    assert browser.wait_for(f"{visible} === 0")
    browser.evaluate("document.getElementById('all-flows').click()")
    assert browser.wait_for(f"{visible} === {len(document['edges'])}")
    edge = document["edges"][0]["id"]
    browser.evaluate(f"flowView.selectEdge('{edge}', true)")
    assert browser.wait_for("document.getElementById('explain')?.textContent") == (
        "no explanation embedded (graph --no-explain)"
    )
    assert browser.errors == []
