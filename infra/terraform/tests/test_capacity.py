"""capacity.py on a fixture with round figures, so that each expected number can be worked out
by hand. The fixture's Zipf steady-state repeats with 2 instance-local balancers run at 1,800,
2,000 and 2,200 req/s (a fourth, faster one has 0.5% errors; a run with 1 balancer is faster
still): the model must use the median one, 2,000 req/s. That run: 100,040 requests of which 40
on no known route; 50.02 s of instance CPU (8 nginx + 40.02 gunicorn + 2 softirq), so 0.5 ms
per request; PostgreSQL 30 s, of which products' backends 9 s, qa's 7.6 s, reviews' 11.4 s and
the server's own processes 2 s (split by requests: 1 / 0.4 / 0.6 s); of the 100,000 known
requests products 50%, qa 20% (2% writes), reviews 30% (2% writes), so the database CPU per
request of each service is products 10 s / 50,000 = 0.2 ms, qa 8 s / 20,000 = 0.4 ms, reviews
12 s / 30,000 = 0.4 ms; GET hit ratio 50% (its balancers: 60% and 40% each)."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

TERRAFORM = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "fleet.json"
SCRIPT = TERRAFORM / "capacity.py"


@pytest.fixture(scope="module")
def capacity():
    spec = importlib.util.spec_from_file_location("capacity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def costs(capacity):
    return capacity.measure(capacity.pick_run(capacity.load_runs(FIXTURE), "zipf", "steady"))


def by_service(plans):
    return {p.service: p for p in plans}


def test_uses_the_median_steady_repeat_with_per_instance_caches(costs):
    # Not the fastest repeat, not the one with 0.5% errors, not the single-balancer (shared cache) run.
    assert costs.run["rps"] == 2000.0 and costs.run["balancers"] == 2 and costs.run["repeat"] == 2
    assert costs.unknown_requests == 40
    assert costs.instance_cpu_per_request == pytest.approx(0.0005)
    assert costs.database_cpu_per_request == pytest.approx(30.0 / 100040)
    assert costs.database_cpu_per_service_request == pytest.approx(
        {"products": 0.0002, "qa": 0.0004, "reviews": 0.0004})
    assert costs.request_share == pytest.approx({"products": 0.5, "qa": 0.2, "reviews": 0.3})
    assert costs.write_share == pytest.approx({"products": 0.0, "qa": 0.02, "reviews": 0.02})
    assert costs.balancer_hit_ratios == {"products-0": 0.6, "products-1": 0.4, "qa-0": 0.6, "qa-1": 0.4,
                                         "reviews-0": 0.6, "reviews-1": 0.4}


def test_instances_keep_the_target_with_one_zone_lost(capacity, costs):
    plans = by_service(capacity.plan(costs, 10_000))
    products = plans["products"]
    # 5,000 req/s x 0.5 ms = 2.5 busy vCPUs, at 60% = 4.17 vCPUs: 3 c7i.large are needed; over
    # 3 zones, 2 per zone, so that the 4 left after a zone's loss still hold it: 6.
    assert products.rate == pytest.approx(5000)
    assert products.instance_vcpus == pytest.approx(4.1667, abs=1e-3)
    assert products.instances == {"c7i.large": 6, "c7i.xlarge": 3, "c7i.2xlarge": 3}
    assert products.connections["c7i.large"] == 6 * 2 * 10
    two_zones = by_service(capacity.plan(costs, 10_000, capacity.Assumptions(zones=2)))["products"]
    assert two_zones.instances == {"c7i.large": 6, "c7i.xlarge": 4, "c7i.2xlarge": 2}
    one_zone = by_service(capacity.plan(costs, 10_000, capacity.Assumptions(zones=1)))["products"]
    assert one_zone.instances == {"c7i.large": 3, "c7i.xlarge": 2, "c7i.2xlarge": 2}


def test_each_database_is_sized_from_its_own_backends(capacity, costs):
    plans = by_service(capacity.plan(costs, 10_000))
    # products: 5,000 x 0.2 ms / 60% = 1.67 vCPUs; half the GETs hit the cache.
    assert plans["products"].database_vcpus == pytest.approx(1.6667, abs=1e-3)
    assert (plans["products"].primary, plans["products"].replicas) == ("db.r7g.large", 0)
    assert plans["products"].database_queries == pytest.approx(2500) and plans["products"].writes == 0
    # qa: 2,000 x 0.4 ms / 60% = 1.33 vCPUs; 1,800 GETs x 50% misses + 200 writes reach it.
    qa = plans["qa"]
    assert qa.database_vcpus == pytest.approx(1.3333, abs=1e-3)
    assert qa.writes == pytest.approx(200) and qa.database_queries == pytest.approx(1100)
    # reviews: 3,000 x 0.4 ms / 60% = 2.0 vCPUs: twice products' per request, on fewer requests.
    assert plans["reviews"].database_vcpus == pytest.approx(2.0)


def test_past_the_largest_database_reads_go_to_replicas(capacity, costs):
    products = by_service(capacity.plan(costs, 50_000, capacity.Assumptions(largest_db_class="db.r7g.xlarge")))["products"]
    # 25,000 x 0.2 ms / 60% = 8.33 vCPUs: a 4-vCPU primary plus two 4-vCPU replicas.
    assert products.database_vcpus == pytest.approx(8.3333, abs=1e-3)
    assert (products.primary, products.replicas) == ("db.r7g.xlarge", 2)
    # 20.8 vCPUs: 11 c7i.large needed, 6 per zone over 3 zones.
    assert products.instances == {"c7i.large": 18, "c7i.xlarge": 9, "c7i.2xlarge": 6}


def test_more_traffic_never_needs_fewer_instances(capacity, costs):
    previous = None
    for rate in (500, 1_000, 5_000, 10_000, 50_000, 100_000):
        plans = capacity.plan(costs, rate)
        counts = [p.instances[t] for p in plans for t in capacity.INSTANCE_TYPES]
        if previous:
            assert all(now >= before for now, before in zip(counts, previous))
        previous = counts


def test_the_command_prints_the_table_for_the_three_rates():
    result = subprocess.run([sys.executable, str(SCRIPT), str(FIXTURE)], capture_output=True, text=True, check=True)
    rows = [line for line in result.stdout.splitlines() if re.match(r"\| [\d,]+ \| (products|qa|reviews) \|", line)]
    assert len(rows) == 9  # 3 rates x 3 services
    assert rows[0].startswith("| 1,000 | products | 500 |") and rows[-1].startswith("| 50,000 | reviews | 15,000 |")
    assert "| 10,000 | products | 5,000 | 4.2 | 6 | 3 | 3 | 1.7 | 2,500 | 0 | 120 | db.r7g.large |" in result.stdout
    assert "2026-12-01T12:00:00Z" in result.stdout and "per balancer: products-0 60%, products-1 40%" in result.stdout
    assert "reviews: reviews_post, reviews_helpful, reviews_report" in result.stdout
    assert "products: none (read-only API)" in result.stdout


def test_the_repeats_are_shown_and_another_layout_can_be_chosen():
    result = subprocess.run([sys.executable, str(SCRIPT), str(FIXTURE)], capture_output=True, text=True, check=True)
    spread = [line for line in result.stdout.splitlines() if re.match(r"\| 2 \| 1 \| \d \| ", line)]
    # The three clean repeats (not the one with errors); the median one is used.
    assert spread == ["| 2 | 1 | 1 | 1,800 | 25.0 | 50% | 0.600 | 0.400 |  |",
                      "| 2 | 1 | 2 | 2,000 | 25.0 | 50% | 0.500 | 0.300 | yes |",
                      "| 2 | 1 | 3 | 2,200 | 25.0 | 50% | 0.400 | 0.200 |  |"]
    chosen = subprocess.run([sys.executable, str(SCRIPT), str(FIXTURE), "--balancers", "1"],
                            capture_output=True, text=True, check=True)
    assert "1 instance-local balancer and 1 local instance per service, 3,000 req/s" in chosen.stdout
    assert "GET hit ratio 70%" in chosen.stdout


def test_a_file_without_steady_state_figures_is_refused_with_a_reason(tmp_path):
    document = json.loads(FIXTURE.read_text())
    document["runs"] = [r for r in document["runs"] if r["cache"] != "steady"]
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(document))
    result = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and not result.stdout
    assert "no clean run (errors <= 0.1%) with mix=zipf cache=steady" in result.stderr
    # An older benchmark's run (no PostgreSQL CPU per database) cannot size the databases.
    old = json.loads(FIXTURE.read_text())
    for run in old["runs"]:
        del run["cpu_seconds"]["postgres_by_database"]
    path.write_text(json.dumps(old))
    result = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and "postgres_by_database" in result.stderr
    missing = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_the_readme_table_is_the_scripts_output_on_the_newest_result():
    """The README's capacity table is pasted from the script's output on the newest dated fleet
    result (docs/results/); it names that file. Without one it shows no figures at all."""
    readme = (TERRAFORM / "README.md").read_text()
    begin, end = "<!-- capacity:begin -->", "<!-- capacity:end -->"
    section = readme.split(begin, 1)[1].split(end, 1)[0].strip()
    results = sorted((TERRAFORM.parents[1] / "docs" / "results").glob("*-fleet.json"))
    if results:
        result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True)
        assert section == result.stdout.strip()
        assert f"docs/results/{results[-1].name}" in section
    else:
        assert "|" not in section
